class_name PersonaeVoice
extends AudioStreamPlayer
## One character's voice: plays that character's audio deltas as they arrive.
##
## Point [member client] at a [PersonaeClient] and set [member character]. Audio goes
## through an [AudioStreamGenerator] at the session's output rate; chunks that do not
## fit yet wait in a bounded queue and are pushed frame by frame from [method _process].
## For a 3D voice, put the same logic on an AudioStreamPlayer3D.

## This character started or stopped being heard.
signal speaking_changed(speaking: bool)
## A sentence starts playing now (subtitles, lip-sync).
signal sentence_started(text: String, duration_ms: int)
## A stage direction reaches its place in the audio: play the gesture or expression.
signal action_started(kind: String, text: String)

@export var client: PersonaeClient
@export var character := ""
## Seconds of audio held in the generator (the jitter buffer).
@export var buffer_seconds := 1.0
## Most seconds queued beyond the generator before the oldest audio is dropped.
@export var max_queue_seconds := 30.0

var speaking := false
var dropped_frames := 0

var _playback: AudioStreamGeneratorPlayback = null
var _queue := PackedVector2Array()
var _rate := 24000
var _sentences: Array = []
var _actions: Array = []
var _played_frames := 0
var _response_frames := 0
var _capacity := 0


func _ready() -> void:
	if client == null:
		push_warning("PersonaeVoice %s has no client" % name)
		return
	client.output_audio_delta.connect(_on_audio)
	client.npc_sentence.connect(_on_sentence)
	client.npc_action.connect(_on_action)
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
	var generator := AudioStreamGenerator.new()
	generator.mix_rate = rate
	generator.buffer_length = buffer_seconds
	stream = generator
	play()
	_playback = get_stream_playback()


func _on_audio(who: String, pcm16: PackedByteArray, event: Dictionary) -> void:
	if who != character:
		return
	if _playback == null:
		_on_session({"session": client.session})
	if int(event.get("offset_ms", 0)) == 0:
		_response_frames = 0
	var frames: int = pcm16.size() >> 1
	var chunk := PackedVector2Array()
	chunk.resize(frames)
	for i in frames:
		var s := float(pcm16.decode_s16(i * 2)) / 32768.0
		chunk[i] = Vector2(s, s)
	_queue.append_array(chunk)
	var limit := int(max_queue_seconds * _rate)
	if _queue.size() > limit:
		dropped_frames += _queue.size() - limit
		_queue = _queue.slice(_queue.size() - limit)


func _on_sentence(event: Dictionary) -> void:
	if str(event.get("character", "")) == character:
		_sentences.append(event)


func _on_action(event: Dictionary) -> void:
	if str(event.get("character", "")) == character:
		_actions.append(event)


func _on_barge_in(_event: Dictionary) -> void:
	stop_speaking()


func _on_response_done(event: Dictionary) -> void:
	var response: Dictionary = event.get("response", {})
	if str(response.get("character", "")) == character and response.get("status") == "cancelled":
		stop_speaking()


## Milliseconds of the current reply the player has heard: frames handed to the
## generator, less those still waiting in it (lip-sync follows this clock).
func heard_ms() -> int:
	if _playback == null:
		return 0
	var in_generator := maxi(0, _capacity - _playback.get_frames_available())
	return int(maxi(0, _response_frames - in_generator) * 1000.0 / _rate)


## Drops everything queued (barge-in, cancelled reply).
func stop_speaking() -> void:
	_queue.clear()
	_sentences.clear()
	_actions.clear()
	if _playback != null:
		_playback.clear_buffer()
	_set_speaking(false)


func _process(_delta: float) -> void:
	if _playback == null:
		return
	var room := _playback.get_frames_available()
	_capacity = maxi(_capacity, room)
	if room > 0 and not _queue.is_empty():
		var n := mini(room, _queue.size())
		_playback.push_buffer(_queue.slice(0, n))
		_queue = _queue.slice(n)
		_played_frames += n
		_response_frames += n
	var heard_ms := int(_response_frames * 1000.0 / _rate)
	while not _sentences.is_empty() and int(_sentences[0].get("audio_start_ms", 0)) <= heard_ms:
		var s: Dictionary = _sentences.pop_front()
		sentence_started.emit(str(s.get("text", "")), int(s.get("audio_duration_ms", 0)))
	while not _actions.is_empty() and int(_actions[0].get("audio_start_ms", 0)) <= heard_ms:
		var a: Dictionary = _actions.pop_front()
		action_started.emit(str(a.get("kind", "action")), str(a.get("text", "")))
	var in_generator := _capacity - _playback.get_frames_available()
	_set_speaking(not _queue.is_empty() or in_generator > _rate / 50)


func _set_speaking(value: bool) -> void:
	if value != speaking:
		speaking = value
		speaking_changed.emit(value)
