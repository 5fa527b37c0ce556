#!/usr/bin/python3
"""Regenerates the decoding fixtures with the host's Pillow (Debian 12: Pillow 9.4, libjpeg-turbo
2.1.5, libwebp 1.2.4). Run from this directory: /usr/bin/python3 make_fixtures.py

  cmyk.jpg                Adobe CMYK JPEG (inverted samples, APP14 marker) as libjpeg writes it
  cmyk_pil_rgb.npy        Image.open("cmyk.jpg").convert("RGB"), uint8 (H, W, 3)
  animated.webp           two-frame animated WebP (lossless)
  animated_pil_rgb.npy    Image.open("animated.webp").convert("RGB") (first frame), uint8 (H, W, 3)
"""
import numpy as np
from PIL import Image

h, w = 24, 40
y, x = np.mgrid[0:h, 0:w]
cmyk = np.stack([(x * 255 // (w - 1)), (y * 255 // (h - 1)), ((x + y) * 4) % 256,
                 (np.abs(x - y) * 9) % 256], axis=-1).astype(np.uint8)
Image.fromarray(cmyk, "CMYK").save("cmyk.jpg", quality=92)
np.save("cmyk_pil_rgb.npy", np.asarray(Image.open("cmyk.jpg").convert("RGB")))

frames = []
for i in range(2):
    rgb = np.stack([(x * 6 + 40 * i) % 256, (y * 10) % 256, ((x * y) + 90 * i) % 256],
                   axis=-1).astype(np.uint8)
    frames.append(Image.fromarray(rgb, "RGB"))
frames[0].save("animated.webp", save_all=True, append_images=frames[1:], duration=100, loop=0,
               lossless=True)
im = Image.open("animated.webp")
assert getattr(im, "is_animated", False) and im.n_frames == 2
np.save("animated_pil_rgb.npy", np.asarray(im.convert("RGB")))
