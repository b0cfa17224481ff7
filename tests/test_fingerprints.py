"""Fingerprints without whole-file hashing on every command: an open checks size, time and
sampled blocks; ``raresift verify`` (``Session.open(path, full=True)``) hashes the whole file."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from raresift.filehash import BLOCK, SAMPLES, file_change, file_fingerprint
from raresift.session import FingerprintError, Session

N, DIM = 20_000, 64  # a 5 MB float32 file: more than the 66 sampled blocks of 64 KiB


@pytest.fixture
def project(tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(N, DIM)).astype(np.float32))
    Session.create(tmp_path / "p", embeddings=emb, concept="cats", progress=False).close()
    return tmp_path / "p", emb


def sampled_offsets(size):
    step = (size - BLOCK) // (SAMPLES + 1)
    return [min(i * step, size - BLOCK) for i in range(SAMPLES + 2)]


def poke(path, offset):
    """Flip one byte in place, keeping the size and the modification time."""
    st = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_change_in_a_sampled_block_is_refused_at_open(project):
    path, emb = project
    poke(emb, sampled_offsets(emb.stat().st_size)[10] + 7)
    with pytest.raises(FingerprintError, match="sampled blocks differ"):
        Session.open(path)


def test_a_change_between_samples_is_caught_by_the_full_check_only(project):
    path, emb = project
    size = emb.stat().st_size
    offsets = sampled_offsets(size)
    between = offsets[10] + BLOCK + (offsets[11] - offsets[10] - BLOCK) // 2
    assert offsets[10] + BLOCK <= between < offsets[11]
    poke(emb, between)
    Session.open(path).close()  # the everyday check reads the samples only
    with pytest.raises(FingerprintError, match="whole-file SHA-256"):
        Session.open(path, full=True)


def test_a_touched_file_is_refused_until_verified(project):
    path, emb = project
    os.utime(emb, ns=(emb.stat().st_atime_ns, emb.stat().st_mtime_ns + 10**9))
    with pytest.raises(FingerprintError, match=f"raresift verify {path}"):
        Session.open(path)
    with Session.open(path, full=True) as s:  # the contents are the same: new time recorded
        assert [(f["role"], f["retimed"]) for f in s.checked_files] == [("embeddings", True)]
    with Session.open(path) as s:
        assert [f["retimed"] for f in s.checked_files] == [False]


def test_a_small_file_is_sampled_whole_so_a_new_time_alone_is_no_change(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * (BLOCK * (SAMPLES + 2)))
    recorded = file_fingerprint(small)
    os.utime(small, ns=(0, recorded["mtime_ns"] + 10**9))
    assert file_change(small, recorded) is None


def test_a_project_recorded_before_still_opens(project):
    """The stored fingerprint's sampled digest is the one earlier raresift recorded (SHA-256
    of the size and 66 evenly spaced 64 KiB blocks), computed here independently."""
    import sqlite3

    path, emb = project
    data = emb.read_bytes()
    digest = hashlib.sha256(len(data).to_bytes(8, "little"))
    for offset in sampled_offsets(len(data)):
        digest.update(data[offset : offset + BLOCK])
    with sqlite3.connect(path / "session.db") as conn:
        row = conn.execute("SELECT sample_sha256, sha256 FROM files WHERE role='embeddings'")
        sample, full = row.fetchone()
    assert (sample, full) == (digest.hexdigest(), hashlib.sha256(data).hexdigest())
    Session.open(path).close()
    Session.open(path, full=True).close()


def test_raresift_verify_prints_each_file_and_exits_2_on_a_change(project):
    path, emb = project
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

    def verify():
        return subprocess.run(
            [sys.executable, "-m", "raresift.cli", "verify", str(path)],
            capture_output=True, text=True, env=env,
        )  # fmt: skip

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert f"embeddings file {emb}: unchanged ({emb.stat().st_size:,} bytes hashed" in ok.stdout
    poke(emb, 5_000_000 - 3)
    bad = verify()
    assert bad.returncode == 2 and "changed since the session recorded it" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_consecutive_ids_are_fingerprinted_by_their_first_and_old_records_still_match():
    """A pool of row numbers is fingerprinted without a pass over its ids; a fingerprint of
    the earlier form (a blake2b of every id: an index saved before) still matches it, and one
    of other ids does not."""
    from raresift.pool import Pool, fingerprint, fingerprint_mismatch

    x = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
    pool = Pool(x)
    now = pool.fingerprint()
    assert now["ids"] == "run:0" and now == fingerprint(np.arange(1000), x)
    earlier = dict(now, ids=hashlib.blake2b(np.arange(1000).tobytes(), digest_size=16).hexdigest())
    assert fingerprint_mismatch(earlier, now) is None and fingerprint_mismatch(now, earlier) is None
    shifted = Pool(x, ids=np.arange(1, 1001)).fingerprint()
    assert shifted["ids"] == "run:1"
    assert fingerprint_mismatch(earlier, shifted) == "the same number of items with other ids"
    assert fingerprint_mismatch(now, shifted) == "the same number of items with other ids"
    scattered = Pool(x, ids=np.arange(1000)[::-1]).fingerprint()
    assert fingerprint_mismatch(now, scattered) == "the same number of items with other ids"


def test_a_saved_index_of_the_earlier_fingerprint_form_still_accepts_its_pool(tmp_path):
    from raresift.index import NeighborIndex
    from raresift.pool import Pool

    pool = Pool(np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32))
    index = NeighborIndex("Flat", progress=False).fit(pool)
    index.pool_fingerprint["ids"] = hashlib.blake2b(pool.ids.tobytes(), digest_size=16).hexdigest()
    index.save(tmp_path / "i.faiss")
    NeighborIndex.load(tmp_path / "i.faiss", pool=pool, progress=False)
    other = Pool(pool.embeddings, ids=pool.ids + 1)
    with pytest.raises(Exception, match="other ids"):
        NeighborIndex.load(tmp_path / "i.faiss", pool=other, progress=False)


def test_a_concept_study_logged_with_the_earlier_fingerprint_form_still_resumes():
    from raresift.pool import Pool
    from raresift.simulate.runner import _same_task

    pool = Pool(np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32))
    now = {"pool": pool.fingerprint(), "answers": "a", "seed_ids": None}
    ids = hashlib.blake2b(pool.ids.tobytes(), digest_size=16).hexdigest()
    earlier = dict(now, pool=dict(now["pool"], ids=ids))
    assert _same_task(earlier, now)
    assert not _same_task(dict(earlier, answers="b"), now)
    assert not _same_task(earlier, dict(now, pool=dict(now["pool"], ids="run:1")))
