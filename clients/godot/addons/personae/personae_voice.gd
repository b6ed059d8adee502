class_name PersonaeVoice
extends AudioStreamPlayer
## One character's voice: plays that character's audio deltas as they arrive, and tells
## when the player hears them.
##
## Point [member client] at a [PersonaeClient] and set [member character]. Audio goes
## through an [AudioStreamGenerator] at the session's output rate; chunks that do not
## fit yet wait in a bounded queue and are pushed from [method _process].
##
## Play-out time, not arrival time: [member playout] ([PersonaePlayout]) follows what has
## come out of the speaker (the generator's mixed position and the frames it has taken,
## less Godot's output latency), so [signal sentence_started] and [signal action_started]
## fire when their audio is heard, and [PersonaeLipSync] follows the same clock. When the
## voice is cut off (the player barges in, the reply is cancelled, or [method
## stop_speaking]) it drops what it still holds and sends conversation.item.truncate with
## the position heard, as OpenAI's clients do, so the character remembers only what the
## player heard. For a 3D voice, put the same logic on an AudioStreamPlayer3D.

## This character started or stopped being heard.
signal speaking_changed(speaking: bool)
## A sentence starts playing now (subtitles).
signal sentence_started(text: String, duration_ms: int)
## A stage direction reaches its place in the audio: play the gesture or expression.
signal action_started(kind: String, text: String)
## The voice was cut off; [param truncations] are the conversation.item.truncate events
## it sent (what the player heard of each reply not heard to its end).
signal stopped(truncations: Array)

## Every voice is in this group: get_tree().call_group(PersonaeVoice.GROUP,
## "stop_speaking") silences them all.
const GROUP := "personae_voices"

@export var client: PersonaeClient
@export var character := ""
## Seconds of audio the generator holds (the jitter buffer); the clock accounts for it.
@export var buffer_seconds := 1.0
## Most seconds queued beyond the generator; audio past that is dropped.
@export var max_queue_seconds := 30.0
## Send conversation.item.truncate with the heard position when the voice is cut off.
@export var truncate_on_stop := true

var speaking := false
var dropped_frames := 0
## The play-out clock: what of each reply the player has heard.
var playout := PersonaePlayout.new()

var _playback: AudioStreamGeneratorPlayback = null
var _queue := PackedVector2Array()
var _rate := 24000
var _cues: Array = []  # [item_id, audio_start_ms, event], in arrival order
var _response_of := {}  # item id -> response id (a reply in progress is cancelled by it)
var _latency := 0.0
var _latency_age := INF


func _ready() -> void:
	add_to_group(GROUP)
	if client == null:
		push_warning("PersonaeVoice %s has no client" % name)
		return
	client.output_audio_delta.connect(_on_audio)
	client.output_audio_done.connect(_on_audio_done)
	client.npc_sentence.connect(_on_cue)
	client.npc_action.connect(_on_cue)
	client.speech_started.connect(_on_barge_in)
	client.response_done.connect(_on_response_done)
	client.session_created.connect(_on_session)
	client.session_updated.connect(_on_session)


func _on_session(event: Dictionary) -> void:
	var info: Dictionary = event.get("session", {})
	var rate := int(info.get("output_sample_rate", 24000))
	if rate == _rate and _playback != null:
		return
	_rate = rate
	_queue.clear()
	_start_playback()


# A fresh generator playback, empty. Also how the voice drops what it holds: Godot 4's
# AudioStreamGeneratorPlayback.clear_buffer() refuses to run while the stream plays.
func _start_playback() -> void:
	var generator := AudioStreamGenerator.new()
	generator.mix_rate = _rate
	generator.buffer_length = buffer_seconds
	stream = generator
	play()
	_playback = get_stream_playback()
	playout.rate = _rate
	playout.restart(_playback.get_frames_available())


func _on_audio(who: String, pcm16: PackedByteArray, event: Dictionary) -> void:
	if who != character:
		return
	var item := str(event.get("item_id", ""))
	if playout.is_cut(item):
		return  # in flight when the voice was cut off
	_note_response(item, event)
	if _playback == null:
		_on_session({"session": client.session})
	var frames: int = pcm16.size() >> 1
	if _queue.size() + frames > int(max_queue_seconds * _rate):
		dropped_frames += frames
		return
	var chunk := PackedVector2Array()
	chunk.resize(frames)
	for i in frames:
		var s := float(pcm16.decode_s16(i * 2)) / 32768.0
		chunk[i] = Vector2(s, s)
	_queue.append_array(chunk)
	playout.write(item, frames)


func _on_audio_done(event: Dictionary) -> void:
	if str(event.get("character", "")) == character:
		playout.finish(str(event.get("item_id", "")))


func _on_cue(event: Dictionary) -> void:
	if str(event.get("character", "")) != character:
		return
	var item := str(event.get("item_id", ""))
	if not playout.is_cut(item):
		_note_response(item, event)
		_cues.append([item, int(event.get("audio_start_ms", 0)), event])


func _note_response(item: String, event: Dictionary) -> void:
	if not _response_of.has(item):
		if _response_of.size() >= PersonaePlayout.ITEMS:
			_response_of.clear()
		_response_of[item] = str(event.get("response_id", ""))


func _on_barge_in(_event: Dictionary) -> void:
	var detection = client.session.get("turn_detection")
	if detection is Dictionary and detection.get("interrupt_response", true) == false:
		return  # the daemon lets the reply go on under the player's voice
	stop_speaking(false)  # the daemon cancels the reply itself


func _on_response_done(event: Dictionary) -> void:
	var response: Dictionary = event.get("response", {})
	if str(response.get("character", "")) == character and response.get("status") == "cancelled":
		stop_speaking(false)


## Milliseconds the player has heard of the reply playing now (lip-sync follows this clock).
func heard_ms() -> int:
	return playout.heard_ms()


## Cuts the voice off now (barge-in, cancelled reply, or the game's own reasons): drops
## the audio and cues it holds, ignores the rest of those replies, and sends
## conversation.item.truncate with what was heard of each (see [member
## truncate_on_stop]). A reply still being generated is cancelled first
## ([param cancel_reply]), so that generation stops before the truncate. Returns the
## truncate events.
func stop_speaking(cancel_reply := true) -> Array:
	var pending_cues: Array = []
	for cue in _cues:
		pending_cues.append(cue[0])
	if _playback != null:
		_sample()  # the heard position as of now, not as of the last frame
	var cancel := ""
	if cancel_reply:
		for item in playout.unfinished() + pending_cues:
			if not playout.is_cut(item) and _response_of.get(item, "") != "":
				cancel = _response_of[item]
	var truncations := playout.stop(pending_cues)
	_cues.clear()
	if _playback != null and (playout.pending() > 0 or not _queue.is_empty()):
		_start_playback()
	_queue.clear()
	if client != null and cancel != "":
		client.cancel_response(cancel)  # first: generation stops before the truncate
	if client != null and truncate_on_stop:
		for event in truncations:
			client.send_event(event)  # ... and cuts it at what was heard
	_set_speaking(false)
	stopped.emit(truncations)
	return truncations


func _process(delta: float) -> void:
	if _playback == null:
		return
	_latency_age += delta
	if _latency_age >= 1.0:  # costly on some drivers: not every frame
		_latency_age = 0.0
		_latency = AudioServer.get_output_latency()
	_sample()  # before pushing: what the generator holds now was all pushed before this
	var room := _playback.get_frames_available()
	if room > 0 and not _queue.is_empty():
		var n := mini(room, _queue.size())
		_playback.push_buffer(_queue.slice(0, n))
		_queue = _queue.slice(n)
		playout.push(n)
	_fire_cues()
	_set_speaking(playout.pending() > 0)


func _sample() -> void:
	playout.observe(
		get_playback_position(),
		_playback.get_frames_available(),
		AudioServer.get_time_since_last_mix(),
		_latency
	)


func _fire_cues() -> void:
	var waiting: Array = []
	for cue in _cues:
		var due := playout.state(cue[0], cue[1])
		if due == PersonaePlayout.WAIT:
			waiting.append(cue)
		elif due == PersonaePlayout.DUE:
			var event: Dictionary = cue[2]
			if event.get("type") == "npc.sentence":
				sentence_started.emit(
					str(event.get("text", "")), int(event.get("audio_duration_ms", 0))
				)
			else:
				action_started.emit(str(event.get("kind", "action")), str(event.get("text", "")))
	_cues = waiting


func _set_speaking(value: bool) -> void:
	if value != speaking:
		speaking = value
		speaking_changed.emit(value)
