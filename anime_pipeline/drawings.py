"""Previz drawings: which renderer backends make them, and where the cast's faces are in one.

Shared by the renderer (continuity starts from a drawn frame), the metrics (identity on
drawings uses the palette signature, not ArcFace), the reviewer and the reference step,
so it belongs to none of them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from anime_pipeline.imaging import COLOR_TOLERANCE, Box, ColorLike, color_mask

PREVIZ_BACKEND_PREFIX = "previz"
MIN_FACE_SHARE = 0.005
MIN_EYE_PIXELS = 2  # smaller blobs are antialiasing specks, not eyes
MAX_EYE_SHARE = 0.1  # an eye is small next to its face region


def is_previz(backend: str) -> bool:
    """Whether a renderer's backend string, live or recorded in a manifest, is the previz
    renderer's: flat drawings, which metrics trained on rendered images (ArcFace) do not apply to."""
    return backend.startswith(PREVIZ_BACKEND_PREFIX)


def _eye_blobs(image: np.ndarray, eye_rgb: ColorLike, tolerance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixel counts, y centres, x centres) of the connected blobs of eye-coloured pixels;
    a blob's centre is the middle of its bounding box."""
    labels, count = ndimage.label(color_mask(image, [eye_rgb], tolerance))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    cy = np.array([(rows.start + rows.stop - 1) / 2 for rows, _ in slices])
    cx = np.array([(cols.start + cols.stop - 1) / 2 for _, cols in slices])
    return sizes, cy.reshape(-1), cx.reshape(-1)


def find_faces(image: np.ndarray, skin_rgb: ColorLike, eye_rgb: ColorLike,
               tolerance: float = COLOR_TOLERANCE, min_share: float = MIN_FACE_SHARE) -> list[Box]:
    """Faces of drawn characters, largest first: bounding boxes of connected regions of pixels
    within `tolerance` of `skin_rgb` that cover ≥ `min_share` of the image and whose box holds
    the centres of ≥ 2 small blobs (2 px to 10 % of the region) within `tolerance` of `eye_rgb`.
    Meant for flat-coloured previz drawings, not photos or shaded renders."""
    skin_labels, n_skin = ndimage.label(color_mask(image, [skin_rgb], tolerance))
    region_sizes = np.bincount(skin_labels.ravel(), minlength=n_skin + 1)[1:]
    order = np.argsort(region_sizes, kind="stable")[::-1]
    candidates = order[region_sizes[order] >= min_share * image.shape[0] * image.shape[1]]
    if not candidates.size:  # the common case on non-drawings: skip labelling the eye colour
        return []
    eye_sizes, eye_y, eye_x = _eye_blobs(image, eye_rgb, tolerance)
    slices = ndimage.find_objects(skin_labels)
    faces = []
    for index in candidates:
        rows, cols = slices[index]
        small = (eye_sizes >= MIN_EYE_PIXELS) & (eye_sizes <= MAX_EYE_SHARE * region_sizes[index])
        inside = (eye_y >= rows.start) & (eye_y < rows.stop) & (eye_x >= cols.start) & (eye_x < cols.stop)
        if np.count_nonzero(small & inside) >= 2:
            faces.append((cols.start, rows.start, cols.stop, rows.stop))
    return faces


def find_face(image: np.ndarray, skin_rgb: ColorLike, eye_rgb: ColorLike,
              tolerance: float = COLOR_TOLERANCE) -> Box | None:
    """The largest face `find_faces` finds (box x0, y0, x1, y1), or None. For previz drawings only."""
    faces = find_faces(image, skin_rgb, eye_rgb, tolerance)
    return faces[0] if faces else None
