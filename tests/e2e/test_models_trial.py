"""The model registry under a new user's mistakes and an attacker's plants, through ``python -m hpctrack models``.

Each test reproduces one finding of a trial: FIFOs given as payloads, symlinks planted inside the
registry, a damaged alias in one model, hand-edited alias files, broken pipes and misleading advice.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import error_lines, one_error, run_cli

pytestmark = pytest.mark.e2e


def _registry(root, n: int = 2):
    from registry_fixtures import sweep_with_artifacts

    return sweep_with_artifacts(root, n)


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """``run_cli`` with a bounded wait: a command that hangs is a failure, not a stuck suite."""
    try:
        return run_cli(*args, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hpctrack {' '.join(args)} hung (still running after {timeout} s)")


def _register(*extra: str, run: str = "src/0", artifact: str = "artifacts/model.bin", name: str = "m"):
    return run_cli("models", "register", run, "--artifact", artifact, "--name", name, *extra, check=True)


def test_a_fifo_is_refused_in_one_line_without_hanging_and_nothing_is_staged(hpctrack_root):
    m = _registry(hpctrack_root)
    os.mkfifo(m.run_path(0) / "artifacts" / "pipe")
    os.mkfifo(m.run_path(0) / "artifacts" / "model_dir" / "sub" / "pipe")
    one_error(_cli("models", "register", "src/0", "--artifact", "artifacts/pipe", "--name", "m"),
               "not a regular file", "pipe")  # fmt: skip
    one_error(_cli("models", "register", "src/0", "--artifact", "artifacts/model_dir", "--name", "m"),
               "not a regular file", "sub/pipe")  # fmt: skip
    assert not (hpctrack_root / "registry" / "m").exists()
    # an existing model: the refusal leaves no staging directory either
    _register(name="m2")
    one_error(_cli("models", "register", "src/0", "--artifact", "artifacts/model_dir", "--name", "m2"),
               "not a regular file")  # fmt: skip
    staging = hpctrack_root / "registry" / "m2" / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    assert run_cli("models", "verify").stdout.strip() == "registry ok"


def test_a_file_replaced_by_a_fifo_during_the_copy_is_refused_without_hanging(hpctrack_root):
    import signal

    from registry_fixtures import stopped_at

    m = _registry(hpctrack_root)
    _register()  # the model exists: the refusal must also leave its staging directory empty
    argv = ["hpctrack", "models", "register", "src/0", "--artifact", "artifacts/model_dir", "--name", "m"]
    proc = stopped_at("register:staging", f"import sys; sys.argv = {argv!r}; from hpctrack.cli import run; run()")
    late = m.run_path(0) / "artifacts" / "model_dir" / "sub" / "config.txt"  # copied after weights.bin
    late.unlink()
    os.mkfifo(late)
    os.kill(proc.pid, signal.SIGCONT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the registration hung on the FIFO")
    assert proc.returncode == 1 and b"not a regular file" in err and len(err.strip().splitlines()) == 1, err
    assert list((hpctrack_root / "registry" / "m" / ".staging").iterdir()) == []
    assert run_cli("models", "verify").stdout.strip() == "registry ok"


def _writable_tree(path) -> None:
    for folder, _dirs, _names in os.walk(path):
        os.chmod(folder, 0o755)


def test_symlinks_planted_as_payload_version_or_model_dir_are_never_followed(hpctrack_root, tmp_path):
    import shutil

    _registry(hpctrack_root)
    for name in ("m", "m2", "m3"):
        _register(name=name)
    reg = hpctrack_root / "registry"
    # versions/1/files -> an identical copy outside the registry (the attacker can change it later)
    files = reg / "m" / "versions" / "1" / "files"
    shutil.copytree(files, tmp_path / "evil-files")
    os.chmod(files.parent, 0o755)
    os.chmod(files, 0o755)
    files.rename(files.parent / "moved")
    os.symlink(tmp_path / "evil-files", files)
    # versions/1 of m2 -> an identical copy inside the registry
    v1 = reg / "m2" / "versions" / "1"
    os.chmod(v1.parent, 0o755)
    shutil.copytree(v1, reg / "m2" / "copy", symlinks=True)
    _writable_tree(v1)
    shutil.rmtree(v1)
    os.symlink(reg / "m2" / "copy", v1)
    # the model directory m4 -> model m3 (inside the registry)
    os.symlink(reg / "m3", reg / "m4")

    for ref, planted in [("m/1", files), ("m2/1", v1), ("m4/1", reg / "m4")]:
        one_error(run_cli("models", "path", ref), "symlink", str(planted))
        one_error(run_cli("models", "download", ref, str(tmp_path / "dl" / ref.replace("/", "-"))), "symlink",
                   str(planted))  # fmt: skip
        code = f"import hpctrack.models as hm; print(hm.get_path({ref!r}))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "symlink" in proc.stderr, (proc.stdout, proc.stderr)
    proc = run_cli("models", "verify")
    assert proc.returncode == 1, proc.stdout
    for planted in (files, v1, reg / "m4"):
        assert sum(str(planted) in line and "symlink" in line for line in proc.stdout.splitlines()) == 1, proc.stdout
    out = run_cli("models", "ls").stdout
    assert any(line.startswith("m4") and "symlink" in line for line in out.splitlines()), out
    assert any(line.startswith("m3  versions: 1") for line in out.splitlines()), out


def test_one_bad_alias_is_that_models_problem_only(hpctrack_root, tmp_path):
    _registry(hpctrack_root)
    for name in ("bad", "good"):
        _register("--alias", "production", name=name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = hpctrack_root / "registry" / "bad" / "aliases" / "evil"
    os.symlink(elsewhere, planted)

    out = run_cli("models", "ls", check=True).stdout.splitlines()
    assert out[0].startswith("bad") and "problem" in out[0] and str(planted) in out[0], out
    assert out[1] == "good  versions: 1  latest: 1  aliases: production=1", out
    listed = json.loads(run_cli("models", "ls", "--format", "json", check=True).stdout)
    assert [len(m["problems"]) for m in listed] == [1, 0], listed
    shown = run_cli("models", "show", "bad/1", check=True).stdout
    assert "model bad/1" in shown and any(line.strip().startswith("problem:") and str(planted) in line
                                          for line in shown.splitlines()), shown  # fmt: skip
    assert "production" in shown
    data = json.loads(run_cli("models", "show", "bad/1", "--format", "json", check=True).stdout)
    assert data["aliases"] == ["production"] and str(planted) in data["problems"][0]
    assert run_cli("models", "path", "bad@production", check=True).stdout.strip().endswith("model.bin")
    assert run_cli("models", "versions", "bad", "--format", "csv", check=True).stdout.startswith("version,")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("inside", [False, True])
def test_alias_with_a_planted_events_link_is_refused_before_the_alias_is_written(hpctrack_root, tmp_path, inside):
    _registry(hpctrack_root)
    _register()
    model = hpctrack_root / "registry" / "m"
    target = model / "elsewhere" if inside else tmp_path / "elsewhere"
    target.mkdir()
    os.rename(model / "events", model / "events.moved")
    os.symlink(target, model / "events")
    one_error(run_cli("models", "alias", "m", "1", "production"), "symlink", str(model / "events"))
    assert not (model / "aliases" / "production").exists()
    one_error(run_cli("models", "tag", "m/1", "stage=prod"), "symlink", str(model / "events"))
    assert not (model / "tags").exists() or list((model / "tags").iterdir()) == []
    one_error(run_cli("models", "delete", "m/1"), "symlink", str(model / "events"))
    assert not (model / "deleted").exists() or list((model / "deleted").iterdir()) == []
    assert list(target.iterdir()) == []


def test_a_hand_edited_alias_that_contradicts_its_own_event_is_reported_and_refused(hpctrack_root):
    _registry(hpctrack_root)
    _register("--alias", "production")
    _register(run="src/1")
    path = hpctrack_root / "registry" / "m" / "aliases" / "production" / "alias.json"
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["event"]["new"] == 1
    os.chmod(path, 0o644)
    path.write_text(json.dumps({**data, "version": 2}))
    proc = run_cli("models", "verify")
    assert proc.returncode == 1, proc.stdout
    hits = [line for line in proc.stdout.splitlines() if "production" in line]
    assert len(hits) == 1 and "2" in hits[0] and "1" in hits[0] and "contradicts" in hits[0], proc.stdout
    one_error(run_cli("models", "path", "m@production"), "production", "contradicts")
    assert run_cli("models", "path", "m/2", check=True).stdout.strip().endswith("model.bin")


def test_download_refusals_say_download_and_leave_no_directory_behind(hpctrack_root, tmp_path):
    import shutil

    _registry(hpctrack_root)
    _register(name="linked")
    _register(name="flipped")
    payload = hpctrack_root / "registry" / "linked" / "versions" / "1" / "files" / "model.bin"
    shutil.copy(payload, tmp_path / "copy.bin")
    os.chmod(payload.parent, 0o755)
    payload.unlink()
    os.symlink(tmp_path / "copy.bin", payload)
    dest = tmp_path / "new" / "deploy"
    line = one_error(run_cli("models", "download", "linked/1", str(dest)), "symlink", str(payload), "download")
    assert "register" not in line and "copy the file" not in line, line
    assert not (tmp_path / "new").exists()
    flipped = hpctrack_root / "registry" / "flipped" / "versions" / "1" / "files" / "model.bin"
    os.chmod(flipped, 0o644)
    data = bytearray(flipped.read_bytes())
    data[10] ^= 1
    flipped.write_bytes(bytes(data))
    one_error(run_cli("models", "download", "flipped/1", str(dest)), "nothing was downloaded")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    one_error(run_cli("models", "download", "flipped/1", str(existing)), "nothing was downloaded")
    assert existing.is_dir() and list(existing.iterdir()) == []  # a directory the user had stays


def test_registering_the_whole_run_directory_gets_safe_advice(hpctrack_root):
    m = _registry(hpctrack_root)
    assert os.path.islink(m.run_path(0) / "run.h5")
    line = one_error(run_cli("models", "register", "src/0", "--artifact", ".", "--name", "m"),
                      "run stores are not artifacts", "file or subdirectory")  # fmt: skip
    assert "copy the file" not in line, line
    os.symlink("model.bin", m.run_path(0) / "artifacts" / "model_dir" / "alias.bin")
    line = one_error(run_cli("models", "register", "src/0", "--artifact", "artifacts/model_dir", "--name", "m"),
                      "symlink", "file or subdirectory")  # fmt: skip
    assert "copy the file" not in line, line
    assert not (hpctrack_root / "registry").exists()


def test_show_claims_only_what_it_checked(hpctrack_root):
    _registry(hpctrack_root)
    _register()
    first = run_cli("models", "show", "m/1", check=True).stdout.splitlines()[0]
    assert "(ok)" not in first and "models verify m/1" in first, first
    payload = hpctrack_root / "registry" / "m" / "versions" / "1" / "files" / "model.bin"
    os.chmod(payload, 0o644)
    data = bytearray(payload.read_bytes())
    data[10] ^= 1
    payload.write_bytes(bytes(data))
    first = run_cli("models", "show", "m/1", check=True).stdout.splitlines()[0]
    assert "(ok)" not in first and "models verify m/1" in first, first
    payload.write_bytes(bytes(data[:-5]))
    first = run_cli("models", "show", "m/1", check=True).stdout.splitlines()[0]
    assert "DAMAGED" in first and "models verify m/1" in first, first


def _first_line_then_close(*args: str) -> "tuple[str, int, str]":
    """``hpctrack ARGS | head -1``: read one line from a real pipe, close it, and the exit code and stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "hpctrack", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    return first, proc.wait(timeout=60), err


def test_show_and_history_into_a_closed_pipe_exit_0(hpctrack_root):
    _registry(hpctrack_root)
    code = ("import hpctrack.models as hm; hm.register('src/0', artifact='artifacts/model.bin', name='m', "
            "tags={f'k{i}': 'x' * 250 for i in range(400)}); hm.set_tag('m/1', 'k0', 'y')")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    for args in (["models", "show", "m/1"], ["models", "history", "m"], ["models", "versions", "m"]):
        first, rc, err = _first_line_then_close(*args)
        assert first.strip() and rc == 0 and "Error" not in err, (args, rc, err)


def test_a_long_model_name_still_pins_its_run(hpctrack_root):
    _registry(hpctrack_root)
    long_a, long_b = "a" * 240 + "x", "a" * 240 + "y"
    for name in (long_a, long_b):
        proc = _register(name=name)
        assert "not pinned" not in proc.stderr, proc.stderr
    line = one_error(run_cli("rm", "src"), "registered as aaaa")
    assert line.count("registered as") == 2, line  # two pins, one per version: the reasons stay unique


def test_history_of_an_alias_never_set_is_one_line_and_a_relative_at_shows_its_moment(hpctrack_root):
    from datetime import datetime

    _registry(hpctrack_root)
    _register("--alias", "production")
    one_error(run_cli("models", "history", "m", "--alias", "nosuch"), "model m has no alias nosuch in its history")
    one_error(run_cli("models", "history", "m", "--alias", "nosuch", "--at", "0d"), "no alias nosuch")
    out = run_cli("models", "history", "m", "--alias", "production", "--at", "0d", check=True).stdout.strip()
    assert out.startswith("m@production at ") and ": version 1" in out, out
    moment = datetime.fromisoformat(out[len("m@production at ") : len("m@production at ") + 19])
    assert abs((datetime.now() - moment).total_seconds()) < 3600 and "(0d)" in out, out


def test_a_bad_versions_filter_gives_an_example_of_the_versions_own_columns(hpctrack_root):
    _registry(hpctrack_root)
    _register()
    _register(run="src/1")
    line = one_error(run_cli("models", "versions", "m", "--where", "loss:min >"), "ends too soon")
    assert "optimizer.lr" not in line and "state ==" not in line and "version" in line, line
    # the config's params are columns too, as in `hpctrack table`
    out = run_cli("models", "versions", "m", "--where", "x == 1", "--format", "csv", check=True).stdout
    assert [row.split(",")[0] for row in out.splitlines()[1:]] == ["2"], out


def test_small_cli_rough_edges(hpctrack_root, tmp_path):
    from hpctrack.checkpoint import CHECKPOINTS_DIR, Checkpoints

    m = _registry(hpctrack_root)
    both = run_cli("models", "register", "src/0", "--artifact", "artifacts/model.bin", "--checkpoint", "latest",
                   "--name", "m")  # fmt: skip
    assert both.returncode == 2 and len(error_lines(both.stderr)) == 1 and "--artifact" in both.stderr, both.stderr
    one_error(run_cli("models", "register", "src/0", "--artifact", "artifacts/model.bin", "--name", "x..y"), "'..'")
    uni = one_error(run_cli("models", "register", "src/0", "--artifact", "artifacts/model.bin", "--name", "modèle"))
    assert "modèle" in uni and "\\\\" not in uni, uni
    with Checkpoints(m.run_path(1) / CHECKPOINTS_DIR).writing(step=7, attempt=1, state={}, keep=5) as folder:
        (folder / "weights.bin").write_bytes(b"w" * 64)
    _register()
    run_cli("models", "register", "src/1", "--checkpoint", "latest", "--name", "m", check=True)
    assert run_cli("models", "alias", "m", "v2", "production", check=True).stdout.strip() == "m@production -> 2"
    run_cli("models", "tag", "m/1", "stage=prod", check=True)
    history = run_cli("models", "history", "m", check=True).stdout
    assert "tags of 1: - -> stage=prod" in history and "{" not in history, history
    csv = run_cli("models", "versions", "m", "--format", "csv", check=True).stdout
    assert [row.split(",")[:1] + [row.split(",")[6]] for row in csv.splitlines()] == [
        ["version", "checkpoint_step"], ["1", ""], ["2", "7"]], csv  # fmt: skip
    markdown = run_cli("models", "versions", "m", "--format", "markdown", check=True).stdout
    assert re.search(r"\| 7 +\|", markdown) and "7.0" not in markdown, markdown
    run_cli("models", "delete", "m/1", check=True)
    run_cli("models", "gc", "--purge", check=True)
    shown = run_cli("models", "show", "m/1", check=True).stdout
    path_line = next(line for line in shown.splitlines() if line.strip().startswith("path:"))
    assert "purged" in path_line and "/files/" not in path_line, shown


def test_deleting_a_version_unpins_its_run_for_that_version_only(hpctrack_root):
    _registry(hpctrack_root)
    _register(name="m")
    _register(name="keep")
    run_cli("models", "delete", "m/1", check=True)
    line = one_error(run_cli("rm", "src"), "registered as keep/1")
    assert "registered as m/1" not in line, line
    run_cli("models", "delete", "keep/1", check=True)
    run_cli("models", "gc", "--purge", check=True)
    run_cli("rm", "src", check=True)
    assert run_cli("models", "verify").stdout.strip() == "registry ok"
