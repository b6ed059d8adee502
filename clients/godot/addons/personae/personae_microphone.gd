class_name PersonaeMicrophone
extends Node
## Streams the microphone to a [PersonaeClient] as PCM16 at the session's input rate.
##
## Two modes: [code]PUSH_TO_TALK[/code] sends audio only while [method press] is held and
## commits the turn on [method release]; [code]VOICE_ACTIVITY[/code] streams all the time
## and lets the daemon's VAD find the turns. Capture runs through an
## [AudioEffectCapture] on a muted bus of its own, so the player does not hear themself.
## Needs "audio/driver/enable_input" on in the project settings.

signal level_changed(rms: float)

enum Mode { PUSH_TO_TALK, VOICE_ACTIVITY }

const BUS_NAME := "PersonaeMic"

@export var client: PersonaeClient
@export var mode := Mode.PUSH_TO_TALK
## An input action that talks while held, in push-to-talk mode ("" = none).
@export var talk_action := "personae_talk"
## Milliseconds of audio per appended frame.
@export var chunk_ms := 100

var talking := false

var _player: AudioStreamPlayer = null
var _capture: AudioEffectCapture = null
var _pending := PackedFloat32Array()
var _step := 1.0
var _pos := 0.0
var _prev := 0.0


func _ready() -> void:
	var bus := AudioServer.get_bus_index(BUS_NAME)
	if bus == -1:
		AudioServer.add_bus()
		bus = AudioServer.bus_count - 1
		AudioServer.set_bus_name(bus, BUS_NAME)
		AudioServer.add_bus_effect(bus, AudioEffectCapture.new())
		AudioServer.set_bus_mute(bus, true)
	_capture = AudioServer.get_bus_effect(bus, 0) as AudioEffectCapture
	_player = AudioStreamPlayer.new()
	_player.stream = AudioStreamMicrophone.new()
	_player.bus = BUS_NAME
	add_child(_player)
	_player.play()
	if client != null:
		client.connected.connect(_on_connected)


func _on_connected(_session: Dictionary) -> void:
	client.set_push_to_talk(mode == Mode.PUSH_TO_TALK)


func set_mode(value: Mode) -> void:
	mode = value
	if client != null and client.is_connected_to_daemon():
		client.set_push_to_talk(mode == Mode.PUSH_TO_TALK)


## Push-to-talk: start a turn.
func press() -> void:
	if talking:
		return
	talking = true
	_capture.clear_buffer()
	client.clear_audio()


## Push-to-talk: end the turn and ask for a reply.
func release() -> void:
	if not talking:
		return
	_pump()
	_flush()
	talking = false
	client.commit(true)


func _unhandled_input(event: InputEvent) -> void:
	if mode != Mode.PUSH_TO_TALK or talk_action == "" or not InputMap.has_action(talk_action):
		return
	if event.is_action_pressed(talk_action):
		press()
	elif event.is_action_released(talk_action):
		release()


func _process(_delta: float) -> void:
	_pump()


func _pump() -> void:
	if _capture == null or client == null:
		return
	var frames := _capture.get_frames_available()
	if frames == 0:
		return
	var stereo := _capture.get_buffer(frames)
	var live := mode == Mode.VOICE_ACTIVITY or talking
	if not live or not client.is_connected_to_daemon():
		return
	var rate := int(client.session.get("input_sample_rate", 16000))
	_step = AudioServer.get_mix_rate() / float(rate)
	var energy := 0.0
	var mono := PackedFloat32Array()
	mono.resize(stereo.size())
	for i in stereo.size():
		mono[i] = (stereo[i].x + stereo[i].y) * 0.5
		energy += mono[i] * mono[i]
	level_changed.emit(sqrt(energy / maxf(1.0, stereo.size())))
	_pending.append_array(_resample(mono))
	if _pending.size() >= rate * chunk_ms / 1000:
		_flush()


## Linear-interpolation resampler; position carries across blocks.
func _resample(x: PackedFloat32Array) -> PackedFloat32Array:
	var out := PackedFloat32Array()
	while _pos < x.size():
		var i := int(_pos)
		var a: float = _prev if i == 0 else x[i - 1]
		var b: float = x[i]
		out.append(lerpf(a, b, _pos - i))
		_pos += _step
	_pos -= x.size()
	if x.size() > 0:
		_prev = x[x.size() - 1]
	return out


func _flush() -> void:
	if _pending.is_empty():
		return
	var pcm := PackedByteArray()
	pcm.resize(_pending.size() * 2)
	for i in _pending.size():
		pcm.encode_s16(i * 2, int(clampf(_pending[i], -1.0, 1.0) * 32767.0))
	_pending.clear()
	client.append_audio(pcm)
