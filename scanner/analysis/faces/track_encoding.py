"""Encode the few detections of a track that say who it is, and split tracks that hold two people.

Only some detections of each track are encoded (an encoding costs ~10-13 ms): the best one, and
another only where the face stops looking like the encoded ones (a dissolve, a seat swap). Tracks
whose encodings disagree are split.
"""

from __future__ import annotations

import numpy as np

from scanner.analysis.clustering import average_linkage
from scanner.analysis.faces.pixels import appearance_patch, make_thumbnail
from scanner.analysis.faces.recognition import encode_faces
from scanner.analysis.faces.tracking import Candidate, Track


def candidates_to_encode(track: Track, appearance_change: float) -> list[Candidate]:
    """The best candidate of `track`, plus (up to `track.k` in all) those that look unlike every
    chosen one, in time order.

    Candidates are the best detection of each time slot of the track. Looks are compared on small
    box-aligned grey patches (`appearance_patch`): a face that stays the same person keeps a
    correlation of `appearance_change` or more; a dissolve or a seat swap drops it.
    """
    pool = sorted(track.slots.values(), key=lambda c: c.det_index)
    best = max(pool, key=lambda c: c.score)
    chosen = [best]
    patches = {id(c): appearance_patch(c.crop, c.box_in_crop) for c in pool}
    while len(chosen) < track.k:
        rest = [c for c in pool if all(c is not o for o in chosen)]
        if not rest:
            break
        likeness = [max(float(patches[id(c)] @ patches[id(o)]) for o in chosen) for c in rest]
        worst = int(np.argmin(likeness))
        if likeness[worst] >= appearance_change:
            break
        chosen.append(rest[worst])
    return sorted(chosen, key=lambda c: c.det_index)


def encode_tracks(tracks: list[Track], appearance_change: float, tolerance: float) -> list[Track]:
    """Encode the chosen detections of finished tracks in one batch, split each track that holds
    more than one person (`split_track`, encodings apart by `tolerance`), and release what only
    encoding needed (candidate crops, appearance patches). Returns the tracks (or their pieces)
    with `encodings` and `encoded_indices` set."""
    chosen = [candidates_to_encode(track, appearance_change) for track in tracks]
    encodings = encode_faces([(c.crop, c.box_in_crop) for cands in chosen for c in cands])
    bounds = np.cumsum([0] + [len(cands) for cands in chosen])
    pieces = [
        piece
        for i, (track, cands) in enumerate(zip(tracks, chosen))
        for piece in split_track(track, cands, encodings[bounds[i] : bounds[i + 1]], tolerance)
    ]
    for track in tracks + pieces:
        track.slots, track.reference_patch, track.appearance = {}, None, None
    return pieces


def split_track(track: Track, candidates: list[Candidate], encodings: np.ndarray, tolerance: float) -> list[Track]:
    """Keep a track's `encodings` (of `candidates`); split it if they are not all one person
    (average linkage under `tolerance`).

    Shot-change cuts catch most tracks that jump between people, but not all (a cut that keeps the
    overall picture, someone stepping into another's place). If the encodings disagree, each
    detection goes to the identity of the nearest encoded detection in time.
    """
    track.encodings = encodings
    track.encoded_indices = [c.det_index for c in candidates]
    if len(encodings) < 2:
        return [track]
    labels = average_linkage(encodings, tolerance)
    if len(set(labels)) == 1:
        return [track]
    # Two people in one track (rare): encode every candidate so that each detection goes to
    # the identity of a nearby encoded detection, not of one at the far end of the track.
    rest = [c for c in track.slots.values() if all(c is not o for o in candidates)]
    if rest:
        candidates = sorted(candidates + rest, key=lambda c: c.det_index)
        encodings = encode_faces([(c.crop, c.box_in_crop) for c in candidates])
        track.encodings = encodings
        track.encoded_indices = [c.det_index for c in candidates]
        labels = average_linkage(encodings, tolerance)
    enc_times = np.array([track.detections[i].time_s for i in track.encoded_indices])
    pieces: dict[int, Track] = {}
    new_index: dict[int, int] = {}  # detection index in `track` -> index in its piece
    for i, det in enumerate(track.detections):
        label = int(labels[int(np.argmin(np.abs(enc_times - det.time_s)))])
        piece = pieces.setdefault(label, Track(track.track_id, track.k, track.slot_s))
        new_index[i] = len(piece.detections)
        piece.detections.append(det)
        piece.boxes.append(track.boxes[i])
        piece.sample_indices.append(track.sample_indices[i])
    best = int(np.argmax([c.score for c in candidates]))
    for label, piece in pieces.items():
        mask = labels == label
        piece.encodings = encodings[mask]
        piece.encoded_indices = [new_index[idx] for idx, m in zip(track.encoded_indices, mask) if m]
        # The track's thumbnail shows whoever had the best detection; only that piece keeps it.
        if mask[best]:
            piece.thumbnail, piece.thumbnail_score = track.thumbnail, track.thumbnail_score
            piece.thumbnail_time_s = track.thumbnail_time_s
        else:
            own = max((c for c, m in zip(candidates, mask) if m), key=lambda c: c.score)
            piece.thumbnail, piece.thumbnail_score = make_thumbnail(own.crop, own.box_in_crop), own.score
            piece.thumbnail_time_s = track.detections[own.det_index].time_s
    return list(pieces.values())
