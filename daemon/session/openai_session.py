"""A realtime session as OpenAI Realtime clients see it: model, dialect, spellings.

    ?model=bram               pins Bram; "personae" or the served base model's name
                              keeps routing; anything else is refused before the session
    OpenAI-Beta: realtime=v1  beta event names (response.audio.delta, ...)

A session speaks OpenAI's shape once the URL names a model, the client sends the beta
header, or a session.update uses an OpenAI field; its input audio is then read at
OpenAI's 24 kHz unless the client names a rate, and it gets OpenAI's whole event set
(openai_reply.py, openai_events). `npc_events: false` keeps personae's `npc.*` events
from strict clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from personae.daemon.errors import ClientError
from personae.daemon.openai_context import served_model_name
from personae.sdk import openai_events as oe
from personae.sdk import protocol as p
from personae.sdk.openai_shape import BETA_NAMES, OPENAI_PCM_RATE, Dialect

if TYPE_CHECKING:
    from pydantic import BaseModel

    from personae.daemon.service import Service

#: `model` values that keep routing (the scene answers)
ROUTING_MODELS = ("personae",)

_beta_models: dict[type, type] = {}
#: OpenAI events personae's own clients do not get
_OPENAI_ONLY = oe.OPENAI_SERVER_EVENT_TYPES - {"npc.warning"}


def pin(service: Service, model: str | None) -> str | None:
    """The character `model` pins (None: routing); ClientError for an unknown name."""
    if model is None or model in ROUTING_MODELS:
        return None
    if model in service.cast:
        return model
    if model == served_model_name(service):
        return None
    known = ", ".join([*ROUTING_MODELS, *sorted(service.cast)])
    raise ClientError(f"unknown model {model!r}; known: {known}", code="model_not_found")


def initial(service: Service, dialect: Dialect, model: str | None) -> p.Session:
    """The session a new connection starts with."""
    pinned = pin(service, model)
    if not dialect.openai:
        return p.Session(id=p.new_id("sess"), pinned_character=pinned)
    return p.OpenAISession(
        id=p.new_id("sess"),
        pinned_character=pinned,
        model=model,
        input_sample_rate=OPENAI_PCM_RATE,
    )


def changes(
    service: Service, config: p.Session, update: p.SessionConfig, dialect: Dialect
) -> dict[str, object]:
    """What an update implies beyond its own fields: `model` pins, OpenAI's rate."""
    out: dict[str, object] = {}
    if "model" in update.model_fields_set:
        out["pinned_character"] = pin(service, update.model)
    if update.voice is not None and update.voice not in service.cast:
        # OpenAI's voices ("alloy", ...): each character keeps its own, as shown
        out["voice"] = None
        update.openai_warnings["voice"] = (
            f"{update.voice!r} is not a character; each character speaks in its own voice"
        )
    if (
        update.dialect is not None
        and not isinstance(config, p.OpenAISession)
        and "input_sample_rate" not in update.model_fields_set
    ):
        out["input_sample_rate"] = OPENAI_PCM_RATE  # OpenAI's default, unless named
    return out


def warnings(update: p.SessionConfig | p.ResponseOptions) -> list[oe.NpcWarning]:
    """A warning for each OpenAI field an update or response.create set in vain."""
    where = "session" if isinstance(update, p.SessionConfig) else "response"
    return [
        oe.NpcWarning(param=f"{where}.{name}", message=f"{name} is not honoured: {why}")
        for name, why in update.openai_warnings.items()
    ]


def with_scene_direction(options: p.ResponseOptions, config: p.Session) -> p.ResponseOptions:
    """The session's `instructions` go before the response's own."""
    if not config.instructions:
        return options
    parts = [config.instructions, options.instructions or ""]
    return options.model_copy(update={"instructions": "\n".join(x for x in parts if x)})


def user_item(
    item_id: str, *, text: str | None = None, audio: bool = False, role: str = "user"
) -> list[BaseModel]:
    """`conversation.item.added` and `.done` for a player's turn (spoken or typed)."""
    if audio:
        content = [oe.Content(type="input_audio", transcript=None)]
    else:
        kind = "input_text" if role == "user" else "output_text"
        content = [oe.Content(type=kind, text=text)]
    item = oe.RealtimeItem(id=item_id, role=role, content=content)  # type: ignore[arg-type]
    return [oe.ConversationItemAdded(item=item), oe.ConversationItemDone(item=item)]


def spell(event: BaseModel, dialect: Dialect, *, npc_events: bool) -> BaseModel | None:
    """`event` as this client spells it; None when it must not be sent."""
    kind: str = event.type  # type: ignore[attr-defined]
    if not npc_events and kind.startswith(("npc.", "game.")):
        return None
    if not dialect.openai and kind in _OPENAI_ONLY:
        return None  # personae's own clients: personae's events
    if dialect is Dialect.OPENAI_BETA and kind in BETA_NAMES:
        cls = _beta_model(type(event), BETA_NAMES[kind])
        fields = {k: v for k, v in dict(event).items() if k != "type"}
        return cls.model_construct(_fields_set=event.model_fields_set, **fields)
    return event


def _beta_model(cls: type, name: str) -> type:
    """The same event class under its beta name (one model, two spellings)."""
    from typing import Literal

    from pydantic import create_model

    if cls not in _beta_models:
        _beta_models[cls] = create_model(
            cls.__name__ + "Beta",
            __base__=cls,
            type=(Literal[name], name),  # type: ignore[valid-type]
        )
    return _beta_models[cls]


def openai_connection(ws: Any) -> dict[str, Any]:
    """RealtimeSession's `model` and `dialect` from a WebSocket's URL and headers."""
    model = ws.query_params.get("model")
    if ws.headers.get("openai-beta", "").startswith("realtime"):
        dialect = Dialect.OPENAI_BETA
    else:
        dialect = Dialect.OPENAI if model is not None else Dialect.PERSONAE
    return {"model": model, "dialect": dialect}
