#!/usr/bin/python3
"""Reference side of the speed / parity benchmark: the authors' PyTorch MegaLoc on the same images.

Not part of the build or the tests. Needs Debian's python3-torch / python3-torchvision / python3-pil /
python3-numpy (scripts/install_deps.sh does not install them: `apt-get install python3-torch
python3-torchvision python3-pil python3-numpy python3-h5py`) and a checkout of the authors' code
(https://github.com/gmberton/MegaLoc, file megaloc_model.py), passed with --megaloc_repo. Nothing of
the authors' code is copied into this project.

Sub-commands:
  make_weights  write a random full-size MegaLoc checkpoint (safetensors, v2 key names) from the
                authors' module initialisation, so both implementations can load identical weights
  run           time the authors' model on images (preprocessing of VPR-methods-evaluation:
                PIL convert("RGB") -> ToTensor -> Normalize(ImageNet) [-> Resize(antialias)]),
                optionally save the descriptors as .npy in sorted-name order
"""

import argparse
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch


def load_authors_model(repo):
    sys.path.insert(0, repo)
    import megaloc_model  # noqa: E402  (the authors' file, from their repository)

    return megaloc_model.MegaLoc()


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        array = tensors[name].detach().cpu().contiguous().numpy().astype("<f4")
        data = array.tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header_bytes = json.dumps(header).encode()
    header_bytes += b" " * ((8 - len(header_bytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            assert info["dtype"] == "F32", f"{path}: only F32 supported here"
            begin, end = info["data_offsets"]
            f.seek(base + begin)
            array = np.frombuffer(f.read(end - begin), dtype="<f4").reshape(info["shape"])
            out[name] = torch.from_numpy(array.copy())
        return out


def list_images(root):
    exts = (".jpg", ".jpeg", ".png")
    names = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.lower().endswith(exts):
                names.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(names)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make_weights")
    mk.add_argument("--megaloc_repo", required=True)
    mk.add_argument("--output_path", required=True)
    mk.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("run")
    run.add_argument("--megaloc_repo", required=True)
    run.add_argument("--weights_path", required=True)
    run.add_argument("--image_path", required=True)
    run.add_argument("--resize", type=int, nargs=2, metavar=("W", "H"), default=None)
    run.add_argument("--num_threads", type=int, default=2)
    run.add_argument("--warmup", type=int, default=1)
    run.add_argument("--descriptors_out", default=None)
    args = parser.parse_args()

    if args.cmd == "make_weights":
        torch.manual_seed(args.seed)
        model = load_authors_model(args.megaloc_repo)
        sd = model.state_dict()
        n = sum(v.numel() for v in sd.values())
        write_safetensors(args.output_path, sd)
        print(json.dumps({"tensors": len(sd), "parameters": n, "path": args.output_path}))
        return

    import torchvision.transforms as T
    from PIL import Image

    torch.set_num_threads(args.num_threads)
    model = load_authors_model(args.megaloc_repo)
    model.load_state_dict(read_safetensors(args.weights_path), strict=True)
    model = model.eval()
    steps = [T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])]
    if args.resize is not None:
        steps.append(T.Resize([args.resize[1], args.resize[0]], antialias=True))
    transform = T.Compose(steps)
    names = list_images(args.image_path)
    descriptors = []
    times = []
    with torch.inference_mode():
        for i, name in enumerate(names):
            start = time.perf_counter()
            image = Image.open(os.path.join(args.image_path, name)).convert("RGB")
            x = transform(image).unsqueeze(0)
            d = model(x)
            elapsed = time.perf_counter() - start
            if i >= args.warmup:
                times.append(elapsed)
            descriptors.append(d[0].numpy())
    if args.descriptors_out:
        np.save(args.descriptors_out, np.stack(descriptors).astype(np.float32))
    total = sum(times)
    print(json.dumps({
        "implementation": "authors' PyTorch (torch %s)" % torch.__version__,
        "images_timed": len(times),
        "seconds_per_image": total / max(len(times), 1),
        "images_per_second": len(times) / total if total > 0 else None,
        "num_threads": args.num_threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


if __name__ == "__main__":
    main()
