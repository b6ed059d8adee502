class_name PersonaeClient
extends Node
## A session with the personae daemon over protocol v1 (JSON text frames, base64 audio).
##
## Add it to the scene, set [member url] and [member characters], and connect to its
## signals: there is one per server event, emitted on the main thread from
## [method _process]. The connection is polled every frame and never blocks; when it
## drops, [signal error] reports "connection_lost" and the node reconnects with
## backoff, re-sending the session settings. Unknown event types (a newer daemon) are
## passed to [signal unknown_event] and otherwise ignored.

## The connection is open and the daemon has sent session.created.
signal connected(session: Dictionary)
## The connection closed; a reconnect follows when [member auto_reconnect] is on.
signal disconnected(code: int, reason: String)
## Anything that went wrong: connect_failed, connection_lost, malformed_frame, or a
## daemon `error` event (its own code, e.g. "unknown_character").
signal error(code: String, message: String)
## Every event, known or not, before its own signal.
signal event_received(event: Dictionary)
signal session_created(event: Dictionary)
signal session_updated(event: Dictionary)
signal speech_started(event: Dictionary)
signal speech_stopped(event: Dictionary)
signal input_audio_buffer_committed(event: Dictionary)
signal input_audio_buffer_cleared(event: Dictionary)
signal conversation_item_created(event: Dictionary)
signal conversation_item_truncated(event: Dictionary)
## More of what the player is saying, while they speak: append event.delta.
signal transcription_delta(event: Dictionary)
## What the daemon heard the player say: event.transcript.
signal transcription_completed(event: Dictionary)
## Who answers and why: event.character, event.reason, event.scores.
signal npc_route(event: Dictionary)
signal response_created(event: Dictionary)
signal output_text_delta(event: Dictionary)
signal output_text_done(event: Dictionary)
## A chunk of a character's voice: PCM16 mono at the session's output rate.
signal output_audio_delta(character: String, pcm16: PackedByteArray, event: Dictionary)
signal output_audio_done(event: Dictionary)
## A sentence about to be spoken, with its audio start and duration: subtitles, lip-sync.
signal npc_sentence(event: Dictionary)
## Lip-sync: event.visemes ({viseme, start_ms, duration_ms}) and event.words ({text,
## start_ms, duration_ms}) that start in the audio chunk after it, on the reply's audio
## timeline. [PersonaeLipSync] plays them out in time with a [PersonaeVoice].
signal npc_viseme(event: Dictionary)
## A stage direction in a reply (event.kind "action" or "emotion", event.text): never spoken;
## or (event.kind "game") an action declared in the character's file, also raised as game_action.
signal npc_action(event: Dictionary)
## A character does a declared action: execute it, then answer with action_result(action_id, ...).
signal game_action(character: String, action_name: String, arguments: Dictionary, action_id: String)
## The daemon's monitor: a character drifts out of character (event.signal, event.rolling).
signal npc_alert(event: Dictionary)
## How a character feels now: event.dominant, event.intensity, event.blend, event.trust.
signal npc_emotion(event: Dictionary)
## Characters start talking to each other (after converse()): event.exchange_id,
## event.characters, event.topic, event.lines. The lines follow as ordinary responses.
signal npc_exchange_started(event: Dictionary)
## A line of the exchange is over: event.index, event.character, event.status,
## event.text (what was heard), event.adapter.
signal npc_exchange_line(event: Dictionary)
## The exchange is over: event.reason ("finished", "interrupted", "error"),
## event.lines_spoken, event.handoff (who answers the player's next unnamed line).
signal npc_exchange_done(event: Dictionary)
signal response_done(event: Dictionary)
signal error_event(event: Dictionary)
## An event type this client does not know (a newer daemon).
signal unknown_event(event: Dictionary)

enum State { DISCONNECTED, CONNECTING, CONNECTED, RECONNECTING }

## Server event type -> the signal it raises. Checked against sdk/protocol.py by CI.
const SERVER_EVENTS := {
	"session.created": "session_created",
	"session.updated": "session_updated",
	"input_audio_buffer.speech_started": "speech_started",
	"input_audio_buffer.speech_stopped": "speech_stopped",
	"input_audio_buffer.committed": "input_audio_buffer_committed",
	"input_audio_buffer.cleared": "input_audio_buffer_cleared",
	"conversation.item.created": "conversation_item_created",
	"conversation.item.truncated": "conversation_item_truncated",
	"conversation.item.input_audio_transcription.delta": "transcription_delta",
	"conversation.item.input_audio_transcription.completed": "transcription_completed",
	"npc.route": "npc_route",
	"response.created": "response_created",
	"response.output_text.delta": "output_text_delta",
	"response.output_text.done": "output_text_done",
	"response.output_audio.delta": "output_audio_delta",
	"response.output_audio.done": "output_audio_done",
	"npc.sentence": "npc_sentence",
	"npc.viseme": "npc_viseme",
	"npc.emotion": "npc_emotion",
	"npc.action": "npc_action",
	"npc.alert": "npc_alert",
	"npc.exchange.started": "npc_exchange_started",
	"npc.exchange.line": "npc_exchange_line",
	"npc.exchange.done": "npc_exchange_done",
	"response.done": "response_done",
	"error": "error_event",
}
## Client event types this node sends. Checked against sdk/protocol.py by CI.
const CLIENT_EVENTS := [
	"session.update",
	"input_audio_buffer.append",
	"input_audio_buffer.commit",
	"input_audio_buffer.clear",
	"conversation.item.create",
	"conversation.item.truncate",
	"response.create",
	"response.cancel",
	"game.event",
	"npc.feedback",
	"npc.converse",
	"game.trigger",
	"game.action_result",
]
const SUBPROTOCOL := "personae.v1"

@export var url := "ws://127.0.0.1:8765/v1/realtime"
## Characters in the scene, who can hear the player (empty: every loaded character).
@export var characters: PackedStringArray = []
## Push-to-talk (the game commits turns) instead of the daemon's voice-activity detection.
@export var push_to_talk := false
## The player's microphone does not pick up the characters' voices: headphones, or an
## echo canceller of the platform's or a voice-chat plugin's. The daemon then skips its
## own echo check (which keeps a character's voice coming back through speakers from
## counting as the player barging in). Leave it off for speakers with a plain
## AudioEffectCapture microphone. Setting it while connected updates the session. See
## docs/clients/echo.md.
@export var client_echo_cancellation := false:
	set(enabled):
		client_echo_cancellation = enabled
		update_session({"client_echo_cancellation": enabled})
@export var connect_on_ready := true
@export var auto_reconnect := true
@export var reconnect_initial_delay := 0.5
@export var reconnect_max_delay := 15.0
@export var connect_timeout := 10.0

var state: State = State.DISCONNECTED
## The session as the daemon last described it.
var session: Dictionary = {}
var reconnects := 0

var _peer: WebSocketPeer = null
var _settings: Dictionary = {}
var _attempt := 0
var _retry_in := -1.0
var _opening_for := 0.0
var _was_open := false


func _ready() -> void:
	if not characters.is_empty():
		_settings["characters"] = Array(characters)
	if push_to_talk:
		_settings["turn_detection"] = null
	if connect_on_ready:
		open()


func _exit_tree() -> void:
	close()


## Starts connecting; progress and failures arrive as signals.
func open() -> void:
	if _peer != null:
		return
	_peer = WebSocketPeer.new()
	_peer.supported_protocols = PackedStringArray([SUBPROTOCOL])
	_peer.inbound_buffer_size = 4 * 1024 * 1024
	_opening_for = 0.0
	_was_open = false
	state = State.RECONNECTING if _attempt > 0 else State.CONNECTING
	var err := _peer.connect_to_url(url)
	if err != OK:
		_fail("connect_failed", "cannot connect to %s (error %d)" % [url, err])


## Closes the connection and stops reconnecting.
func close() -> void:
	_retry_in = -1.0
	if _peer != null:
		_peer.close(1000, "bye")
		_peer = null
	state = State.DISCONNECTED


func is_connected_to_daemon() -> bool:
	return state == State.CONNECTED


func _process(delta: float) -> void:
	if _retry_in >= 0.0:
		_retry_in -= delta
		if _retry_in < 0.0:
			open()
		return
	if _peer == null:
		return
	_peer.poll()
	match _peer.get_ready_state():
		WebSocketPeer.STATE_CONNECTING:
			_opening_for += delta
			if _opening_for > connect_timeout:
				_fail("connect_failed", "no answer from %s in %.0f s" % [url, connect_timeout])
		WebSocketPeer.STATE_OPEN:
			_was_open = true
			while _peer != null and _peer.get_available_packet_count() > 0:
				var packet := _peer.get_packet()
				if _peer.was_string_packet():
					_dispatch_text(packet.get_string_from_utf8())
				else:
					error.emit("malformed_frame", "binary frame on a JSON session")
		WebSocketPeer.STATE_CLOSED:
			var code := _peer.get_close_code()
			var reason := _peer.get_close_reason()
			if _was_open:
				disconnected.emit(code, reason)
				_fail(
					"connection_lost", "the daemon closed the connection (%d %s)" % [code, reason]
				)
			else:
				_fail("connect_failed", "cannot reach the daemon at %s" % url)


func _fail(code: String, message: String) -> void:
	_peer = null
	state = State.DISCONNECTED
	error.emit(code, message)
	if not auto_reconnect:
		return
	var ceiling := minf(reconnect_max_delay, reconnect_initial_delay * pow(2.0, _attempt))
	_retry_in = ceiling * randf_range(0.5, 1.0)
	_attempt += 1
	state = State.RECONNECTING


func _dispatch_text(text: String) -> void:
	var event = JSON.parse_string(text)
	if typeof(event) != TYPE_DICTIONARY or typeof(event.get("type")) != TYPE_STRING:
		error.emit("malformed_frame", "a frame that is not an event object")
		return
	_handle(event)


func _handle(event: Dictionary) -> void:
	var type: String = event["type"]
	event_received.emit(event)
	if not SERVER_EVENTS.has(type):
		unknown_event.emit(event)
		return
	match type:
		"session.created":
			session = event.get("session", {})
			if _attempt > 0:
				reconnects += 1
			_attempt = 0
			state = State.CONNECTED
			if not _settings.is_empty():
				send_event({"type": "session.update", "session": _settings.duplicate(true)})
			connected.emit(session)
		"session.updated":
			session = event.get("session", {})
		"response.output_audio.delta":
			var pcm := Marshalls.base64_to_raw(str(event.get("delta", "")))
			output_audio_delta.emit(str(event.get("character", "")), pcm, event)
			return
		"npc.action":
			if event.get("kind") == "game":
				game_action.emit(
					str(event.get("character", "")),
					str(event.get("name", "")),
					event.get("arguments", {}),
					str(event.get("action_id", ""))
				)
		"error":
			var info: Dictionary = event.get("error", {})
			error.emit(str(info.get("code", "error")), str(info.get("message", "")))
	emit_signal(SERVER_EVENTS[type], event)


## Sends one event (a Dictionary with "type"); false while not connected.
func send_event(event: Dictionary) -> bool:
	if _peer == null or _peer.get_ready_state() != WebSocketPeer.STATE_OPEN:
		return false
	return _peer.send_text(JSON.stringify(event)) == OK


## Changes session settings; they are kept and re-sent after a reconnect.
func update_session(fields: Dictionary) -> bool:
	_settings.merge(fields, true)
	return send_event({"type": "session.update", "session": fields})


func set_scene(ids: PackedStringArray) -> bool:
	return update_session({"characters": Array(ids)})


## Switches between push-to-talk and the daemon's voice-activity detection.
func set_push_to_talk(enabled: bool) -> bool:
	push_to_talk = enabled
	var detection = null if enabled else {"type": "server_vad"}
	return update_session({"turn_detection": detection})


## PCM16 mono at the session's input rate.
func append_audio(pcm16: PackedByteArray) -> bool:
	var audio := Marshalls.raw_to_base64(pcm16)
	return send_event({"type": "input_audio_buffer.append", "audio": audio})


## Push-to-talk release: commit what was appended and ask for a reply.
func commit(respond := true) -> bool:
	var ok := send_event({"type": "input_audio_buffer.commit"})
	if respond:
		ok = respond_now() and ok
	return ok


func clear_audio() -> bool:
	return send_event({"type": "input_audio_buffer.clear"})


## A typed line from the player, answered by [param character] or whoever the router picks.
func say(text: String, character := "") -> bool:
	var item := {
		"type": "message",
		"role": "user",
		"content": [{"type": "input_text", "text": text}],
	}
	var ok := send_event({"type": "conversation.item.create", "item": item})
	return respond_now(character) and ok


func respond_now(character := "", instructions := "") -> bool:
	var options := {}
	if character != "":
		options["character"] = character
	if instructions != "":
		options["instructions"] = instructions
	return send_event({"type": "response.create", "response": options})


func cancel_response(response_id := "") -> bool:
	var event := {"type": "response.cancel"}
	if response_id != "":
		event["response_id"] = response_id
	return send_event(event)


## Tells the daemon how much of a reply the player heard. [PersonaeVoice] sends this
## itself, with the position heard, whenever it is cut off.
func truncate(item_id: String, audio_end_ms: int) -> bool:
	return send_event(PersonaePlayout.truncate_event(item_id, audio_end_ms))


## Something happened in the game; characters in the scene may react.
func game_event(
	event_name: String, description := "", data := {}, who := PackedStringArray()
) -> bool:
	var event := {
		"type": "game.event", "name": event_name, "description": description, "data": data
	}
	if not who.is_empty():
		event["characters"] = Array(who)
	return send_event(event)


## Fire a trigger declared in a character's file: its line (parameters filled) or instruction.
func trigger(character: String, trigger_name: String, parameters := {}) -> bool:
	var event := {
		"type": "game.trigger",
		"character": character,
		"trigger": trigger_name,
		"parameters": parameters,
	}
	return send_event(event)


## What became of a game_action: status "done", "refused" or "failed"; the character remembers.
func action_result(action_id: String, status: String, reason := "") -> bool:
	var event := {
		"type": "game.action_result", "action_id": action_id, "status": status, "reason": reason
	}
	return send_event(event)


## The player rated a reply, from -1.0 (bad) to 1.0 (good): feeds the daemon's A/B metrics.
func feedback(character: String, score: float, response_id := "", comment := "") -> bool:
	var event := {"type": "npc.feedback", "character": character, "score": clampf(score, -1.0, 1.0)}
	if response_id != "":
		event["response_id"] = response_id
	if comment != "":
		event["comment"] = comment
	return send_event(event)


## Characters in the scene talk to each other about [param topic]: [param lines] lines,
## the first of [param who] opening. The player's speech or text stops it.
func converse(who: PackedStringArray, topic: String, lines := 4) -> bool:
	var event := {"type": "npc.converse", "characters": Array(who), "topic": topic, "lines": lines}
	return send_event(event)
