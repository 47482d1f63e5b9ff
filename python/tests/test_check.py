"""`python3 -m peercache_sglang`: the check a user runs before starting SGLang, against real sidecars."""
import os
import subprocess
import sys

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def check(*args):
    return subprocess.run([sys.executable, "-m", "peercache_sglang"] + list(args), cwd=PYTHON_DIR, capture_output=True, text=True, timeout=60)


def test_a_working_sidecar_passes_every_step(hosts):
    _, b = hosts
    r = check("--socket", b.sock_path, "--pages", "4", "--iterations", "3")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "transport %s" % b.protocol in out
    assert "zero copy yes" in out and "every byte equal" in out and out.rstrip().endswith("peercache check: ok")


def test_failures_are_one_line_and_exit_1(hosts, tmp_path):
    _, b = hosts
    for args, reason in (
        (("--socket", str(tmp_path / "none.sock")), "cannot talk to the sidecar"),
        (("--socket", b.sock_path, "--page-bytes", str(1 << 30)), "more than the sidecar's --slot-bytes"),
    ):
        r = check(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert r.stderr.count("\n") == 1 and reason in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_page_bytes_takes_the_node_clis_suffixes():
    from peercache_sglang.check import parse_size
    assert [parse_size(t) for t in ("4096", "128k", "1.5m", "4g", "8KiB")] == [4096, 131072, 1572864, 4 << 30, 8192]
    # As the Node CLIs: a suffix the check tool refused ("8m") is taken; a bad one is exit 2, one line.
    r = check("--page-bytes", "8q")
    assert r.returncode == 2 and "is not a size" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_bad_arguments_exit_2():
    for args in (("--pages", "0"), ("--pages", "x"), ("--timeout", "0"), ("--page-bytes", "1.5")):
        r = check(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
