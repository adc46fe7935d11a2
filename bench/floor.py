"""The floor for the overhead benchmark: a bare workflow doing N sequential no-op activities, with the
same activity options as the canary's Kubernetes activities."""



from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows import options


@activity.defn(name="bench_noop")
def noop(step: int) -> int:
    return step


@workflow.defn(name="BenchFloor")
class Floor:
    @workflow.run
    async def run(self, steps: int) -> int:
        kube = options.kubernetes(600)
        for step in range(steps):
            await workflow.execute_activity(noop, step, **kube)
        return steps



