class_name PersonaeLipSync
extends Node
## Lip-sync for one character: its npc.viseme events, played out in time with its voice.
##
## Point [member client] at a [PersonaeClient], [member voice] at the character's
## [PersonaeVoice] and set [member character]. Each frame the node compares what the
## voice has played ([method PersonaeVoice.heard_ms]) with the visemes received and
## emits [signal viseme] as each one starts, so a face moves with what is heard, not
## with what arrived. The 15 viseme names are Oculus/Meta's: sil, PP, FF, TH, DD, kk,
## CH, SS, nn, RR, aa, E, ih, oh, ou.

## A mouth shape starts now, for duration_ms ("sil" when the character falls silent).
signal viseme(viseme_name: String, duration_ms: int)
## A spoken word starts now (karaoke subtitles).
signal word_started(text: String, duration_ms: int)

@export var client: PersonaeClient
@export var voice: PersonaeVoice
@export var character := ""

## The viseme showing now.
var current := "sil"

var _visemes: Array = []
var _words: Array = []
var _response := ""
var _ends_at := -1


func _ready() -> void:
	if client == null or voice == null:
		push_warning("PersonaeLipSync %s needs a client and a voice" % name)
		return
	client.npc_viseme.connect(_on_viseme)
	client.speech_started.connect(_on_barge_in)
	client.response_done.connect(_on_response_done)


func _on_viseme(event: Dictionary) -> void:
	if str(event.get("character", "")) != character:
		return
	var response := str(event.get("response_id", ""))
	if response != _response:
		_clear()
		_response = response
	_visemes.append_array(event.get("visemes", []))
	_words.append_array(event.get("words", []))


func _on_barge_in(_event: Dictionary) -> void:
	_clear()  # the voice stops playing: so does the mouth


func _on_response_done(event: Dictionary) -> void:
	var response: Dictionary = event.get("response", {})
	if str(response.get("id", "")) == _response and response.get("status") == "cancelled":
		_clear()


func _clear() -> void:
	_visemes.clear()
	_words.clear()
	_show("sil", 0)


func _process(_delta: float) -> void:
	if voice == null:
		return
	var heard := voice.heard_ms()
	while not _visemes.is_empty() and int(_visemes[0].get("start_ms", 0)) <= heard:
		var v: Dictionary = _visemes.pop_front()
		_ends_at = int(v.get("start_ms", 0)) + int(v.get("duration_ms", 0))
		_show(str(v.get("viseme", "sil")), int(v.get("duration_ms", 0)))
	while not _words.is_empty() and int(_words[0].get("start_ms", 0)) <= heard:
		var w: Dictionary = _words.pop_front()
		word_started.emit(str(w.get("text", "")), int(w.get("duration_ms", 0)))
	if _visemes.is_empty() and current != "sil" and heard >= _ends_at:
		_show("sil", 0)


func _show(viseme_name: String, duration_ms: int) -> void:
	if viseme_name != current or duration_ms > 0:
		current = viseme_name
		viseme.emit(viseme_name, duration_ms)
