"""Export the trained checkpoints of a profile with a manifest (``make checkpoints``).

Runs the same ``load_or_train`` calls as notebooks 01, 08 and 13, every training seed of each
Flowers102 variant included (training whatever is not cached
yet: in the ``full`` profile, do it once on a GPU), then copies every checkpoint (weights plus
its ``.json``) into ``--out`` and writes ``manifest.json`` there: profile, files, configuration,
accuracy, sha256 and package version of each. Copy the files of that folder into
``$XAI_DATA_DIR/checkpoints/`` on the students' machines: the notebooks then load them (after
checking their sha256 and configuration) instead of training, also with ``XAI_PROFILE=full`` on
a CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export(meta: dict, name: str, out: Path) -> dict:
    """Copy one checkpoint's weights and metadata into ``out``; return its manifest entry."""
    if "checkpoint" not in meta:
        raise SystemExit(f"{name} was trained but could not be saved (is $XAI_CACHE_DIR "
                         "writable?): nothing to export")
    weights = Path(meta["checkpoint"])
    metadata = weights.parent / f"{weights.name.split('.')[0]}.json"
    for path in (weights, metadata):
        shutil.copy2(path, out / path.name)
    saved = json.loads(metadata.read_text())  # what was written (a fresh run's meta lacks some)
    return {"model": name, "profile": saved["profile"], "weights": weights.name,
            "metadata": metadata.name, "sha256": saved["sha256"],
            "val_accuracy": saved["val_accuracy"], "test_accuracy": saved.get("test_accuracy"),
            "package_version": saved["package_version"], "key": saved["key"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "checkpoints")
    parser.add_argument("--profile", default=None, help="fast or full (default: $XAI_PROFILE)")
    args = parser.parse_args()

    import torch  # PyTorch before TensorFlow: the other order crashes some installs

    from helpers.core.shortcut import CIFAR_BIRD_CUE
    from helpers.profile import get_profile
    from helpers.torch.train import load_or_train as torch_load_or_train

    profile = get_profile(args.profile)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, meta = torch_load_or_train(profile, device)
    entries = [export(meta, "resnet18_cifar", args.out)]
    _, meta = torch_load_or_train(profile, device, shortcut=CIFAR_BIRD_CUE)
    entries.append(export(meta, "resnet18_cifar_atajo", args.out))

    from helpers.keras import train as kt
    from helpers.notebook import import_tensorflow_quietly

    import_tensorflow_quietly()
    data = kt.FlowersSplits(profile)
    for variant in kt.VARIANTS:
        for seed in kt.seeds_for(profile, variant):
            _, meta = kt.load_or_train(variant, data, verbose=0, seed=seed)
            entries.append(export(meta, f"flowers_{variant}_s{seed}", args.out))
    _, meta = kt.load_or_train("baseline", data, preprocessing="efficientnet", verbose=0)
    entries.append(export(meta, "flowers_baseline_preprocessing_bug", args.out))
    (args.out / "manifest.json").write_text(json.dumps(
        {"profile": profile.name, "checkpoints": entries}, indent=1))
    print(f"{len(entries)} checkpoints of profile {profile.name!r} in {args.out}; copy its files "
          "into $XAI_DATA_DIR/checkpoints/ on the students' machines.")


if __name__ == "__main__":
    main()
