extends Control
## Sample: Bram and Mara in one scene. Type a line or hold Tab (or the button) to talk;
## the log shows what the daemon heard, who answers and why, and the replies, while
## each character's voice plays through its own PersonaeVoice. "/talk TOPIC" has Bram
## and Mara talk to each other about it (four lines); speaking or typing stops them.
## Each voice prints its sentences as they are heard, and Escape silences both voices
## (each tells the daemon how much of its reply was heard). One action is handled:
## ask Bram to repair an item ("Bram, can you fix my sword?"); the sample "repairs" it and
## answers with action_result, which Bram remembers.

var _replies := {}

@onready var client: PersonaeClient = $Client
@onready var microphone: PersonaeMicrophone = $Microphone
@onready var log_view: RichTextLabel = $Layout/Log
@onready var line: LineEdit = $Layout/Input/Line
@onready var talk: Button = $Layout/Input/Talk
@onready var status: Label = $Layout/Status


func _ready() -> void:
	client.connected.connect(
		func(s: Dictionary) -> void: status.text = "connected: %s" % s.get("id")
	)
	client.error.connect(_on_error)
	client.transcription_completed.connect(_on_transcript)
	client.npc_route.connect(_on_route)
	client.output_text_delta.connect(_on_text)
	client.response_done.connect(_on_done)
	client.npc_emotion.connect(_on_emotion)
	client.npc_exchange_started.connect(
		func(e: Dictionary) -> void: log_view.append_text("[i]they talk: %s[/i]\n" % e.get("topic"))
	)
	client.npc_exchange_done.connect(
		func(e: Dictionary) -> void: log_view.append_text("[i]talk %s[/i]\n" % e.get("reason"))
	)
	client.game_action.connect(_on_game_action)
	client.unknown_event.connect(func(e: Dictionary) -> void: print("ignoring ", e.get("type")))
	line.text_submitted.connect(_on_submit)
	talk.button_down.connect(microphone.press)
	talk.button_up.connect(microphone.release)
	$BramVoice.sentence_started.connect(func(t: String, _ms: int) -> void: print("Bram: ", t))
	$MaraVoice.sentence_started.connect(func(t: String, _ms: int) -> void: print("Mara: ", t))


func _unhandled_input(event: InputEvent) -> void:
	if event.is_action_pressed("ui_cancel"):
		get_tree().call_group(PersonaeVoice.GROUP, "stop_speaking")


func _on_submit(text: String) -> void:
	if text.strip_edges() == "":
		return
	if text.begins_with("/talk "):
		client.converse(PackedStringArray(["bram", "mara"]), text.substr(6), 4)
		line.clear()
		return
	log_view.append_text("[b]You:[/b] %s\n" % text)
	client.say(text)
	line.clear()


func _on_transcript(event: Dictionary) -> void:
	log_view.append_text("[b]You (spoken):[/b] %s\n" % event.get("transcript", ""))


func _on_route(event: Dictionary) -> void:
	var scores: Dictionary = event.get("scores", {})
	var parts := PackedStringArray()
	for who in scores:
		parts.append("%s %.2f" % [who, scores[who]])
	var line_text := (
		"[i]→ %s (%s): %s[/i]\n" % [event.get("character"), event.get("reason"), ", ".join(parts)]
	)
	log_view.append_text(line_text)


func _on_text(event: Dictionary) -> void:
	var id: String = event.get("response_id", "")
	_replies[id] = str(_replies.get(id, "")) + str(event.get("delta", ""))


func _on_done(event: Dictionary) -> void:
	var response: Dictionary = event.get("response", {})
	var who := str(response.get("character", "")).capitalize()
	log_view.append_text("[b]%s:[/b] %s\n" % [who, response.get("output_text", "")])
	_replies.erase(response.get("id"))


func _on_game_action(who: String, action_name: String, arguments: Dictionary, id: String) -> void:
	if action_name != "repair":
		return
	var item := str(arguments.get("item", ""))
	log_view.append_text("[i][game] %s repairs the %s[/i]\n" % [who.capitalize(), item])
	client.action_result(id, "done", "the %s is mended" % item)


func _on_emotion(event: Dictionary) -> void:
	var who := str(event.get("character", "")).capitalize()
	log_view.append_text("[i]%s feels %s[/i]\n" % [who, event.get("dominant", "")])


func _on_error(code: String, message: String) -> void:
	status.text = "%s: %s" % [code, message]
