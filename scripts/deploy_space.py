"""Publish the app as a Hugging Face Space: the files git tracks that the Space runs or shows
(app.py, pixelcnn/, weights/, examples/, requirements.txt, README.md with its front matter,
docs/, LICENSE, .gitattributes), as they are in the working tree, in one commit.

    python scripts/deploy_space.py USER/NAME [--private] [--token TOKEN]
    python scripts/deploy_space.py USER/NAME --dry-run     # list what would go up; no network

huggingface_hub creates the Space (Gradio SDK) if it does not exist and uploads over the Hub's
HTTP API, storing the weights and pictures with Xet itself: neither git nor git-lfs is needed,
and this repository's history (where they are plain git blobs) never travels. Files on the Space
that are not in the selection are deleted, so the Space mirrors it. The token is --token, else
$HF_TOKEN, else the one `hf auth login` saved.
"""
import argparse
import fnmatch
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi, metadata_load

ROOT = Path(__file__).resolve().parents[1]
# What a Space needs (tests/, scripts/, train.py and the dev files stay behind); matched against
# `git ls-files` as fnmatch patterns, so untracked files (.venv, caches, test-artifacts) never go.
SPACE = ["README.md", "LICENSE", ".gitattributes", "requirements.txt", "app.py", "pixelcnn/*.py",
         "weights/*", "examples/*", "docs/*"]
CONFIG_HELP = "https://huggingface.co/docs/hub/spaces-config-reference"


def space_files(root=ROOT):
    """The paths (relative, POSIX) that go up: tracked, present in the working tree, in SPACE."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    return [p for p in listed.split("\0")
            if p and (Path(root) / p).is_file() and any(fnmatch.fnmatchcase(p, pat) for pat in SPACE)]


def check_front_matter(root, files):
    """Refuse, saying why, what the Hub could not run: README.md must open with the Space's
    front matter (sdk: gradio, app_file among the files), and its sdk_version must be the
    gradio that requirements.txt pins (the Space installs both)."""
    readme = Path(root) / "README.md"
    meta = metadata_load(readme) if readme.is_file() else None
    if not meta or meta.get("sdk") != "gradio":
        sys.exit(f"{readme} has no Space front matter: it must open with a YAML block between '---' lines "
                 f"that says at least 'sdk: gradio' and 'app_file: app.py' ({CONFIG_HELP}).")
    app_file = meta.get("app_file", "app.py")
    if app_file not in files:
        sys.exit(f"README.md's front matter runs app_file: {app_file}, which is not among the files to upload.")
    pins = [line.split("==", 1)[1].strip() for line in (Path(root) / "requirements.txt").read_text().splitlines()
            if line.replace(" ", "").startswith("gradio==")]
    if pins and str(meta.get("sdk_version")) != pins[0]:
        sys.exit(f"README.md's front matter says sdk_version: {meta.get('sdk_version')}, but requirements.txt "
                 f"pins gradio=={pins[0]}: make them the same.")


def main(argv=None, root=ROOT):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("repo_id", metavar="USER/NAME", help="the Space, e.g. alice/pixelcnn-studio")
    p.add_argument("--private", action="store_true", help="create the Space private (an existing one is left as is)")
    p.add_argument("--token", default=None, help="a Hugging Face token with write access (default: $HF_TOKEN or "
                                                 "the saved login)")
    p.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded, and stop")
    args = p.parse_args(argv)
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        p.error(f"the Space is named USER/NAME, not {args.repo_id!r}")

    files = space_files(root)
    check_front_matter(root, files)
    total = sum((Path(root) / f).stat().st_size for f in files)
    if args.dry_run:
        print("\n".join(files))
        print(f"{len(files)} files, {total / 1e6:.1f} MB, would go to the Space {args.repo_id}")
        return

    api = HfApi(token=args.token)
    url = api.create_repo(args.repo_id, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True)
    print(f"uploading {len(files)} files ({total / 1e6:.1f} MB) to {url}")
    api.upload_folder(repo_id=args.repo_id, repo_type="space", folder_path=root, allow_patterns=files,
                      delete_patterns="*", commit_message="Deploy PixelCNN Studio with scripts/deploy_space.py")
    print(f"done: {url} (the Space builds and starts in a few minutes)")


if __name__ == "__main__":
    main()
