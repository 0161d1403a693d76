"""An ASR model paired with a diarization model (spec.asr.diarizationModel): the
DiarizationReady condition says whether the gateway can add speakers to its transcripts, and
the index of pairs says which ASR models to look at again when a diarization model changes."""

from __future__ import annotations

from berth_operator.controller.conditions import Verdict
from berth_operator.controller.names import Key
from berth_operator.controller.resource import ModelDeployment


def partner_name(md: ModelDeployment) -> str | None:
    """The diarization model `md` pairs with (an ASR model's), if any."""
    if md.spec.engine != "nemo-asr" or md.spec.asr is None:
        return None
    return md.spec.asr.diarization_model


def diarization_verdict(md: ModelDeployment, partner: ModelDeployment | None) -> Verdict | None:
    """DiarizationReady for an ASR model that names a partner; None when it names none."""
    name = partner_name(md)
    if name is None:
        return None
    where = f"{md.namespace}/{name}"
    if partner is None:
        return Verdict(
            "False",
            "DiarizationModelMissing",
            f"spec.asr.diarizationModel names {where}, which does not exist (or is invalid): "
            "create it, or change the field",
        )
    if partner.spec.engine != "pyannote":
        return Verdict(
            "False",
            "DiarizationModelInvalid",
            f"spec.asr.diarizationModel names {where}, which runs {partner.spec.engine}: name a "
            "pyannote ModelDeployment",
        )
    ready = next((c for c in partner.status.conditions or [] if c.type == "Ready"), None)
    if ready is not None and ready.status == "True":
        return Verdict("True", "DiarizationModelReady", f"speakers come from {where}")
    scaling = partner.spec.autoscaling
    if scaling is not None and scaling.min_replicas == 0 and partner.spec.replicas == 0:
        return Verdict(
            "True",
            "DiarizationModelOnRequest",
            f"speakers come from {where}, which starts on the first request that asks for them",
        )
    why = f"{ready.reason}: {ready.message}" if ready else "not reconciled yet"
    return Verdict(
        "False",
        "DiarizationModelNotReady",
        f"{where} is not ready ({why}); requests that ask for speakers get 503 until it is",
    )


class Pairs:
    """Which ASR models pair with each diarization model, as the store last saw them."""

    def __init__(self) -> None:
        self._partner_of: dict[Key, Key] = {}
        self._pairers: dict[Key, set[Key]] = {}

    def set(self, key: Key, md: ModelDeployment | None) -> set[Key]:
        """Records the pairing of `key` (None: gone or unreadable); returns the ASR models that
        pair with `key`, whose condition may have changed with it."""
        if old := self._partner_of.pop(key, None):
            self._pairers[old].discard(key)
            if not self._pairers[old]:
                del self._pairers[old]
        name = partner_name(md) if md is not None else None
        if name is not None:
            partner = (key[0], name)
            self._partner_of[key] = partner
            self._pairers.setdefault(partner, set()).add(key)
        return set(self._pairers.get(key, ())) - {key}
