class_name PersonaeLipSync
extends Node
## Lip-sync for one character: its npc.viseme events, played out in time with its voice.
##
## Point [member client] at a [PersonaeClient], [member voice] at the character's
## [PersonaeVoice] and set [member character]. Each frame the node asks the voice's
## play-out clock ([member PersonaeVoice.playout]) which visemes have been heard and
## emits [signal viseme] as each one starts, so a face moves with what comes out of the
## speaker, not with what arrived (the generator holds up to a second ahead). Visemes of
## a reply the voice cut off never show. The 15 viseme names are Oculus/Meta's: sil, PP,
## FF, TH, DD, kk, CH, SS, nn, RR, aa, E, ih, oh, ou.

## A mouth shape starts now, for duration_ms ("sil" when the character falls silent).
signal viseme(viseme_name: String, duration_ms: int)
## A spoken word starts now (karaoke subtitles).
signal word_started(text: String, duration_ms: int)

@export var client: PersonaeClient
@export var voice: PersonaeVoice
@export var character := ""

## The viseme showing now.
var current := "sil"

var _visemes: Array = []  # [item_id, viseme], in audio order
var _words: Array = []  # [item_id, word]
var _item := ""  # the reply of the viseme showing
var _ends_at := -1


func _ready() -> void:
	if client == null or voice == null:
		push_warning("PersonaeLipSync %s needs a client and a voice" % name)
		return
	client.npc_viseme.connect(_on_viseme)
	voice.stopped.connect(_on_stopped)


func _on_viseme(event: Dictionary) -> void:
	if str(event.get("character", "")) != character:
		return
	var item := str(event.get("item_id", ""))
	for v in event.get("visemes", []):
		_visemes.append([item, v])
	for w in event.get("words", []):
		_words.append([item, w])


func _on_stopped(_truncations: Array) -> void:
	_visemes.clear()  # the voice stopped playing: so does the mouth
	_words.clear()
	_show("sil", 0)


func _process(_delta: float) -> void:
	if voice == null:
		return
	var clock := voice.playout
	var shown := _due(_visemes, clock)
	for entry in shown:
		var v: Dictionary = entry[1]
		_item = entry[0]
		_ends_at = int(v.get("start_ms", 0)) + int(v.get("duration_ms", 0))
		_show(str(v.get("viseme", "sil")), int(v.get("duration_ms", 0)))
	for entry in _due(_words, clock):
		var w: Dictionary = entry[1]
		word_started.emit(str(w.get("text", "")), int(w.get("duration_ms", 0)))
	if current != "sil" and clock.heard_ms_of(_item) >= _ends_at and not _follows_on():
		_show("sil", 0)  # a pause, or the end of the reply


# The next viseme starts where the one showing ends (it is due on the next frame).
func _follows_on() -> bool:
	if _visemes.is_empty() or _visemes[0][0] != _item:
		return false
	return int(_visemes[0][1].get("start_ms", 0)) <= _ends_at


# Takes the entries heard from the front of the queue (dropping those of replies cut off).
func _due(queue: Array, clock: PersonaePlayout) -> Array:
	var out: Array = []
	while not queue.is_empty():
		var state := clock.state(queue[0][0], int(queue[0][1].get("start_ms", 0)))
		if state == PersonaePlayout.WAIT:
			break
		var entry: Array = queue.pop_front()
		if state == PersonaePlayout.DUE:
			out.append(entry)
	return out


func _show(viseme_name: String, duration_ms: int) -> void:
	if viseme_name != current or duration_ms > 0:
		current = viseme_name
		viseme.emit(viseme_name, duration_ms)
