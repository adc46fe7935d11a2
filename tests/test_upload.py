"""Artifact uploads against moto's S3: content-addressed, not sent twice, and a multipart upload cut
off by a crash resumes with only the parts it lacks."""

from __future__ import annotations

import hashlib
import os

from activities.targets.updater.store import Store
from activities.targets.updater.upload import PART_SIZE, upload
from models.updater import UploadInput


def test_a_cut_multipart_upload_resumes_with_the_parts_it_lacks(s3_server, updater_setup, tmp_path):
    s3 = s3_server.client()
    store = Store(s3, updater_setup.repository)
    path = tmp_path / "big-2.0.0.tar.gz"
    data = os.urandom(2 * PART_SIZE + 1234)  # three parts
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    key = store.key("blobs", sha)
    cut = s3.create_multipart_upload(Bucket="updates", Key=key)["UploadId"]  # the crashed attempt: part 1 sent
    s3.upload_part(Bucket="updates", Key=key, UploadId=cut, PartNumber=1, Body=data[:PART_SIZE])

    sent, beats = [], []
    s3.meta.events.register("provide-client-params.s3.UploadPart", lambda params, **_: sent.append(params["PartNumber"]))
    request = UploadInput(repository=updater_setup.repository, path=str(path), version="2.0.0", platform="linux")
    artifact = upload(store, request, beats.append)
    assert (artifact.sha256, artifact.length, artifact.name) == (sha, len(data), "big-2.0.0.tar.gz")
    assert sent == [2, 3], "only the parts the cut upload lacked"
    stored = s3.get_object(Bucket="updates", Key=key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == sha
    assert any(b.startswith("part 3/3") for b in beats)

    sent.clear()
    assert upload(store, request, beats.append) == artifact and sent == []  # already there: not sent again
