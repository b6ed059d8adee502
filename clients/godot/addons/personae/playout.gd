class_name PersonaePlayout
## Play-out time for one voice: how much of each reply the player has heard.
##
## Audio pushed into an [AudioStreamGenerator] is not audio heard: the generator holds up
## to its buffer_length, and the driver plays what the mixer took output_latency later.
## Each frame [PersonaeVoice] samples the mixer with [method observe]: the generator
## frames mixed so far (AudioStreamPlayer.get_playback_position(), underrun silence
## included) and the reply frames it has taken (frames pushed less those still in the
## generator). The device position heard now is the mixed position, less the
## resampler's read-ahead, plus the time since the last mix, less the output latency
## (Godot's "sync the gameplay with audio" recipe); mapped back
## through the samples it gives the reply frames heard, silence counted out. Subtitles,
## visemes and actions are due when their audio is heard ([method state]), and a voice
## cut off reports what was heard of each reply ([method stop]) as OpenAI's clients do.
##
## Pure arithmetic, no engine calls, in the GDScript common to Godot 3 and 4 (no
## `extends`: RefCounted in 4, Reference in 3), so tests can run it outside Godot 4.

## [method state]: not yet heard, heard now (fire it), or never (its reply was cut off).
const WAIT := 0
const DUE := 1
const NEVER := 2
## Mixer samples kept: at 60 frames per second, about 8 s (far beyond any output latency).
const HISTORY := 512
## Replies and cut reply ids remembered.
const ITEMS := 32
## Generator frames the playback position runs ahead of what has been mixed: Godot's
## resampler pulls 128 frames at a time (AudioStreamPlaybackResampled's
## INTERNAL_BUFFER_LEN) and interpolates two frames back. Counted out, the clock is never
## early, and late by at most that (about 5.5 ms at 24 kHz).
const RESAMPLER_LEAD := 130

## Frames per second of the generator (the session's output rate).
var rate := 24000
## Frames the generator holds when full (its get_frames_available() when empty).
var capacity := 0
## Reply frames accepted to play (queued or in the generator) since the playback started.
var written := 0
## Reply frames handed to the generator since the playback started.
var pushed := 0
## The device position coming out of the speaker, in generator frames since the start.
var heard_device := 0

var _items: Array = []  # {"id", "start" (reply frame), "frames", "finished"}, oldest first
var _cut: Array = []  # ids of replies cut off: their late audio and cues are dropped
var _device: Array = [0]  # mixer samples: generator frames mixed ...
var _taken: Array = [0]  # ... and reply frames it had taken by then


func _init(sample_rate: int = 24000) -> void:
	rate = sample_rate


## A fresh generator playback, empty, with room for [param frames]: the clock starts over.
func restart(frames: int) -> void:
	capacity = frames
	written = 0
	pushed = 0
	heard_device = 0
	_items = []
	_device = [0]
	_taken = [0]


## [param frames] of reply [param item_id] were accepted to play, after everything before.
func write(item_id: String, frames: int) -> void:
	var last := _items.size() - 1
	if last < 0 or _items[last]["id"] != item_id:
		_items.append({"id": item_id, "start": written, "frames": 0, "finished": false})
		if _items.size() > ITEMS:
			_items.pop_front()
		last = _items.size() - 1
	_items[last]["frames"] += frames
	written += frames


## [param frames] of the accepted audio went into the generator.
func push(frames: int) -> void:
	pushed += frames


## Reply [param item_id] has all its audio (response.output_audio.done): cues past its
## end fire when its end is heard; a reply with no audio at all is heard at once.
func finish(item_id: String) -> void:
	if _cut.has(item_id):
		return
	var i := _find(item_id)
	if i < 0:
		write(item_id, 0)
		i = _items.size() - 1
	_items[i]["finished"] = true


## One sample of the mixer, taken each frame before pushing more: the generator's
## playback position (s), its get_frames_available(), AudioServer's
## get_time_since_last_mix() and get_output_latency() (s).
func observe(
	position_s: float, frames_available: int, since_mix_s: float, latency_s: float
) -> void:
	var last := _device.size() - 1
	var device := int(round(position_s * rate))
	var taken := pushed - (capacity - frames_available)
	# the two reads are not atomic with the audio thread: keep the samples monotonic
	if device < _device[last]:
		device = _device[last]
	if taken < _taken[last]:
		taken = _taken[last]
	if taken > pushed:
		taken = pushed
	if device > _device[last] or taken > _taken[last]:
		_device.append(device)
		_taken.append(taken)
		if _device.size() > HISTORY:
			_device.pop_front()
			_taken.pop_front()
	var now := device - RESAMPLER_LEAD + int(round((since_mix_s - latency_s) * rate))
	if now > device:
		now = device  # not past what was mixed
	if now > heard_device:
		heard_device = now


## Reply frames heard so far (of all replies since the playback started).
func heard_frames() -> int:
	return _taken_at(heard_device)


## Reply frames accepted but not yet heard (the voice is speaking while this is > 0).
func pending() -> int:
	return written - heard_frames()


## Milliseconds heard of the reply being heard now (the latest one begun), 0 before any.
func heard_ms() -> int:
	var heard := heard_frames()
	for i in range(_items.size() - 1, -1, -1):
		if _items[i]["start"] < heard:
			return _heard_in(i, heard) * 1000 / rate
	return 0


## Milliseconds heard of reply [param item_id]; -1 when none of its audio came.
func heard_ms_of(item_id: String) -> int:
	var i := _find(item_id)
	if i < 0:
		return -1
	return _heard_in(i, heard_frames()) * 1000 / rate


## The reply being heard now ("" before any).
func current_item() -> String:
	var heard := heard_frames()
	for i in range(_items.size() - 1, -1, -1):
		if _items[i]["start"] < heard:
			return _items[i]["id"]
	return ""


## Replies with audio whose end has not come (response.output_audio.done), oldest first.
func unfinished() -> Array:
	var out := []
	for item in _items:
		if not item["finished"]:
			out.append(item["id"])
	return out


func is_cut(item_id: String) -> bool:
	return _cut.has(item_id)


## Whether a cue at [param start_ms] of reply [param item_id] is heard: [constant DUE] once
## the frame it starts on has come out of the speaker, [constant NEVER] if the reply was
## cut off, else [constant WAIT] (also while the reply's audio has not come).
func state(item_id: String, start_ms: int) -> int:
	if _cut.has(item_id):
		return NEVER
	var i := _find(item_id)
	if i < 0:
		return WAIT
	var item: Dictionary = _items[i]
	var offset := start_ms * rate / 1000
	var heard := heard_frames()
	if offset < item["frames"]:
		return DUE if item["start"] + offset < heard else WAIT
	# past the audio received: due when the reply's end is heard, if no more is coming
	if item["finished"] and item["start"] + item["frames"] <= heard:
		return DUE
	return WAIT


## The voice is cut off (barge-in, or the game stops it): the replies not heard to their
## end are cut (their late audio and cues are dropped, as are [param also]'s, replies
## whose cues came before any audio) and, for each that had audio, the
## conversation.item.truncate event with what was heard of it. Call [method restart]
## with the new playback after.
func stop(also: Array = []) -> Array:
	var heard := heard_frames()
	var out := []
	for i in _items.size():
		var item: Dictionary = _items[i]
		var got := _heard_in(i, heard)
		if item["finished"] and got >= item["frames"]:
			continue  # heard to its end
		_remember_cut(item["id"])
		if item["frames"] > 0:
			out.append(truncate_event(item["id"], got * 1000 / rate))
	for id in also:
		if _find(id) < 0:
			_remember_cut(id)
	return out


## The protocol's conversation.item.truncate: the player heard [param audio_end_ms] of
## reply [param item_id] (content part 0, its audio).
static func truncate_event(item_id: String, audio_end_ms: int) -> Dictionary:
	return {
		"type": "conversation.item.truncate",
		"item_id": item_id,
		"content_index": 0,
		"audio_end_ms": audio_end_ms,
	}


func _remember_cut(item_id: String) -> void:
	if _cut.has(item_id):
		return
	_cut.append(item_id)
	if _cut.size() > ITEMS:
		_cut.pop_front()


func _find(item_id: String) -> int:
	for i in range(_items.size() - 1, -1, -1):
		if _items[i]["id"] == item_id:
			return i
	return -1


# Frames of item i among the first `heard` reply frames.
func _heard_in(i: int, heard: int) -> int:
	var got: int = heard - _items[i]["start"]
	if got < 0:
		return 0
	if got > _items[i]["frames"]:
		return _items[i]["frames"]
	return got


# Reply frames taken by the mixer before device frame d. Between two samples the mixer
# read what the generator held first and underrun silence after it (the voice pushes
# right after each sample), so reply frames fill the start of each span.
func _taken_at(d: int) -> int:
	var i := _device.size() - 1
	while i > 0 and _device[i] > d:
		i -= 1
	if i == _device.size() - 1 or _device[i] > d:
		return _taken[i]  # the newest sample, or older than the history kept
	var span: int = d - _device[i]
	var real: int = _taken[i + 1] - _taken[i]
	return _taken[i] + (span if span < real else real)
