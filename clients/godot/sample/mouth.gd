extends Node2D
## A drawn mouth for the lip-sync sample: each viseme is an ellipse of its own width and
## opening, eased toward over a few frames so shapes blend.

## viseme -> (width, opening), relative to the mouth's size
const SHAPES := {
	"sil": Vector2(0.8, 0.05),
	"PP": Vector2(0.7, 0.0),
	"FF": Vector2(0.8, 0.12),
	"TH": Vector2(0.8, 0.2),
	"DD": Vector2(0.85, 0.3),
	"kk": Vector2(0.8, 0.35),
	"CH": Vector2(0.55, 0.35),
	"SS": Vector2(0.9, 0.15),
	"nn": Vector2(0.8, 0.25),
	"RR": Vector2(0.6, 0.3),
	"aa": Vector2(0.9, 0.8),
	"E": Vector2(1.0, 0.5),
	"ih": Vector2(1.0, 0.35),
	"oh": Vector2(0.6, 0.65),
	"ou": Vector2(0.4, 0.45),
}

@export var size := Vector2(120, 80)
@export var ease_per_second := 18.0

var _target: Vector2 = SHAPES["sil"]
var _shape: Vector2 = SHAPES["sil"]


func set_viseme(viseme_name: String, _duration_ms: int) -> void:
	_target = SHAPES.get(viseme_name, SHAPES["sil"])


func _process(delta: float) -> void:
	_shape = _shape.lerp(_target, minf(1.0, delta * ease_per_second))
	queue_redraw()


func _draw() -> void:
	var half := Vector2(size.x * _shape.x, size.y * maxf(_shape.y, 0.04)) / 2.0
	var points := PackedVector2Array()
	for i in 32:
		var a := TAU * i / 32.0
		points.append(Vector2(cos(a) * half.x, sin(a) * half.y))
	draw_colored_polygon(points, Color(0.35, 0.05, 0.08))
	draw_polyline(points + PackedVector2Array([points[0]]), Color(0.8, 0.3, 0.3), 4.0)
