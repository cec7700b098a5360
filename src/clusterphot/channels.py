"""Which filters make the red, green and blue channels of a colour composite.

Only the weights: light enough to be worked out while the job graph is built (the images
themselves are made in :mod:`clusterphot.composite`).
"""

from __future__ import annotations

from typing import Mapping

CHANNELS: tuple[str, str, str] = ("red", "green", "blue")


def default_channel_weights(pivot_wavelengths: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Channel -> filter -> weight, from the filters' pivot wavelengths.

    The filters are placed blue to red at even steps t from 0 to 1; blue takes weight
    max(0, 1 - 2t), green 1 - |2t - 1| and red max(0, 2t - 1). Five HUGS filters give
    blue = F275W, F336W; green = F336W, F438W, F606W; red = F606W, F814W. With two filters
    green is their mean, with one all channels are that filter (a grey image).
    """
    ordered = sorted(pivot_wavelengths, key=lambda f: pivot_wavelengths[f])
    n = len(ordered)
    if n == 0:
        raise ValueError("no filters to make a composite from")
    positions = {f: (k / (n - 1) if n > 1 else 0.5) for k, f in enumerate(ordered)}
    raw = {
        "red": {f: max(0.0, 2 * t - 1) for f, t in positions.items()},
        "green": {f: 1 - abs(2 * t - 1) for f, t in positions.items()},
        "blue": {f: max(0.0, 1 - 2 * t) for f, t in positions.items()},
    }
    for channel, weights in raw.items():
        if sum(weights.values()) == 0:  # two filters: green is their mean; one: grey
            raw[channel] = {f: 1.0 for f in ordered}
    return {channel: normalised_weights(raw[channel]) for channel in CHANNELS}


def normalised_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights scaled to sum to 1, zero weights dropped."""
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError("channel weights must add up to a positive number")
    return {f: float(w) / total for f, w in weights.items() if w > 0}


def channel_weights(pivot_wavelengths: Mapping[str, float],
                    configured: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """The configured weights (each channel normalised to a weighted mean), else the defaults.

    Raises ValueError naming the channel when a weight names a filter the cluster lacks, a
    weight is negative, or a channel would be empty.
    """
    if not configured:
        return default_channel_weights(pivot_wavelengths)
    weights = {}
    for channel in CHANNELS:
        given = dict(configured.get(channel) or {})
        unknown = sorted(set(given) - set(pivot_wavelengths))
        if unknown:
            raise ValueError(f"rgb channel '{channel}': filter(s) {', '.join(unknown)} not among this "
                             f"cluster's filters ({', '.join(sorted(pivot_wavelengths))})")
        if any(w < 0 for w in given.values()):
            raise ValueError(f"rgb channel '{channel}': weights must not be negative")
        if sum(given.values()) <= 0:
            raise ValueError(f"rgb channel '{channel}': give at least one filter a positive weight")
        weights[channel] = normalised_weights(given)
    return weights
