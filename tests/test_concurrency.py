"""Several processes writing one SQLite file lose nothing and see no lock errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import open_memos

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import open_memos

    worker = int(sys.argv[1])
    mem = open_memos({home!r}, busy_timeout_s=60)
    for i in range({per}):
        record = mem.add(f"worker {{worker}} fact {{i}}", tags=[f"w{{worker}}"])
        if i % 10 == 0:
            mem.update(record.id, f"worker {{worker}} fact {{i}} (edited)")
            mem.search(f"worker {{worker}}", k=3)
    mem.add_many([f"worker {{worker}} bulk {{j}}" for j in range({per})])
    mem.add("shared line every worker writes")
    mem.close()
    print("ok")
    """
)


def test_parallel_processes_lose_nothing(tmp_path: Path) -> None:
    home, workers, per = tmp_path / "h", 4, 40
    open_memos(home).close()  # create the database first, like a deployed store
    script = WRITER.format(tests=str(Path(__file__).parent), home=str(home), per=per)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err.lower() and out.strip() == "ok"
    mem = open_memos(home)
    stats = mem.stats()
    assert stats.items == workers * per * 2 + 1
    assert stats.versions == stats.items + workers * (per // 10)
    for w in range(workers):
        tagged = mem.list(filter={"tags": [f"w{w}"]}, limit=1000)
        assert len(tagged) == per
    assert len(mem.indexes.get(mem.core.cube("default"))) == stats.items
    mem.close()


def test_first_open_races_on_a_new_database(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from helpers import open_memos
        open_memos({str(tmp_path / "new")!r}).close()
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
