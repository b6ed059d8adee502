extends Control
## Lip-sync sample: type a line, Bram answers, and the mouth moves with his voice.

@onready var client: PersonaeClient = $Client
@onready var lip_sync: PersonaeLipSync = $BramLipSync
@onready var mouth: Node2D = $Mouth
@onready var line: LineEdit = $Layout/Line
@onready var word: Label = $Layout/Word


func _ready() -> void:
	lip_sync.viseme.connect(mouth.set_viseme)
	lip_sync.word_started.connect(_on_word)
	line.text_submitted.connect(_on_line)


func _on_line(text: String) -> void:
	client.say(text, "bram")
	line.clear()


func _on_word(text: String, _duration_ms: int) -> void:
	word.text = text
