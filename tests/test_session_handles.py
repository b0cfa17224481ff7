"""Two handles on one session in one process, and a reader in another process, lose nothing.

Regression: ``Store.open`` used to read the database header with Python's ``open``; closing that
descriptor dropped the POSIX locks of the process's other connection, so another process's
reader could checkpoint and delete the WAL under it, and its later commits were lost.
"""

import subprocess
import sys

import numpy as np

from raresift.session import Session


def test_a_second_handle_in_the_same_process_keeps_the_first_ones_commits(tmp_path):
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(50, 4)).astype("f4"))
    first = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy", progress=False)
    first.answer(1, "1")
    Session.open(tmp_path / "p").close()  # a second handle, opened and closed
    first.answer(2, "0")
    reader = (
        "import sqlite3, sys\n"
        "sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM answers').fetchall()"
    )
    subprocess.run([sys.executable, "-c", reader, str(tmp_path / "p" / "session.db")], check=True)
    first.undo()
    first.answer(3, "1")
    script = (
        "import sys; from raresift.session import Session\n"
        "print(sorted((a['id'], a['answer']) for a in Session.open(sys.argv[1]).answers()))"
    )
    seen = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "p")], capture_output=True, text=True
    )
    assert seen.stdout.strip() == "[(1, '1'), (3, '1')]", seen.stderr
