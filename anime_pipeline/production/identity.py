"""Identity in the production steps: which backend judges a show's images, and the show's
threshold for the rule that judged a recorded value.

A manifest records each identity value with the rule's backend and that backend's own calibrated
threshold (`RuleRecord`); its gate compares the value with `quality.identity` for that backend,
so editing the show's thresholds re-judges the recorded values without measuring them again.
"""

from __future__ import annotations

from anime_pipeline.config.schema import IdentityBackendName, Quality, ShowConfig
from anime_pipeline.manifest import Record
from anime_pipeline.metrics.character import IdentityRule
from anime_pipeline.metrics.suite import IdentityBackend, MetricSuite


class RuleRecord(Record):
    """The same-character rule that judged an identity value: its backend and calibrated threshold."""

    backend: IdentityBackendName
    calibrated: float
    source: str

    @classmethod
    def of(cls, rule: IdentityRule) -> RuleRecord:
        return cls(backend=rule.backend, calibrated=rule.threshold, source=rule.source)

    def threshold(self, quality: Quality) -> float:
        """The show's threshold for this rule (`quality.identity.<backend>`)."""
        return quality.identity.threshold(self.backend, self.calibrated)


def show_identity_backend(suite: MetricSuite, config: ShowConfig, renderer_backend: str) -> IdentityBackend:
    """The backend that judges identity on images of `renderer_backend` for this show: its style's
    `look` picks ArcFace (photoreal) or CCIP (drawn) where installed (`MetricSuite.identity_backend`)."""
    return suite.identity_backend(renderer_backend, photoreal=config.show.style.look == "photoreal")
