extends SceneTree
# Runs the Godot addon's PersonaePlayout (clients/godot/addons/personae/playout.gd) against
# a simulated Godot audio path, under Godot 3's headless runtime (the helper is written in
# the GDScript common to Godot 3 and 4). Prints one JSON line per scenario.
#
# The simulation is of what the engine does, kept apart from the helper's arithmetic:
# - the generator: a ring buffer of 2^15 - 1 frames (buffer_length 1 s at 24 kHz),
#   filled by the voice's pushes, read by the resampler, silence when it runs dry;
# - the resampler pulls 128 generator frames at a time (also one pull at play()), and
#   the playback position counts every frame pulled;
# - the mixer renders a block of BLOCK generator frames every BLOCK / RATE s; the driver
#   plays a block's last frame LATENCY s after it was mixed (get_output_latency());
# - the game runs _process at 60 fps: the voice's sequence (sample the mixer, push what
#   fits, fire the cues that are due) on its own copy of PersonaeVoice's bookkeeping.
# Ground truth: every frame the mixer renders is labelled (reply frame or silence) with
# the time it comes out of the speaker.

const RATE := 24000
const BLOCK := 256
const LATENCY := 0.035
const PULL := 128
const CAPACITY := 32767
const FRAME_S := 1.0 / 60.0
const TICK_S := 0.0005

var Playout = load("res://playout.gd")
var clock
var now := 0.0
# the engine
var ring := 0  # frames in the generator
var taken_total := 0  # reply frames read from it
var mixed := 0  # generator frames pulled (the playback position)
var internal := []  # pulled, not yet rendered: reply frame index or -1
var last_mix := 0.0
var next_mix := 0.0
var blocks := []  # [mix time, labels]
# the voice
var queue := 0  # frames waiting beyond the generator
var queued_max := 0
var handed := {}  # item -> frames pushed into the generator
var queued_items := []  # [item, frames] in order, for handed
var cues := []  # [item, start_ms, name]
var fired := []
var dropped := []
var track := []  # [clock frames heard, true frames heard] per game frame
var next_frame := 0.0
var counted_blocks := 0  # blocks wholly out of the speaker ...
var counted_real := 0  # ... and the reply frames in them
var starts := {}  # item -> [first reply frame, frames], from the order of arrival
var truncations := []  # barge: what the helper said was heard
var heard_at_stop := 0  # barge: reply frames truly heard when the voice stopped
var handed_at_stop := 0.0
var unfinished_at_stop := []


func _init() -> void:
	var mode := OS.get_environment("PLAYOUT_SCENARIO")
	var out: Dictionary
	if mode == "steady":
		out = steady()
	elif mode == "underrun":
		out = underrun()
	elif mode == "barge":
		out = barge()
	elif mode == "two":
		out = two()
	else:
		out = {"error": "unknown scenario " + mode}
	print("RESULT " + JSON.print(out))
	quit()


func start() -> void:
	if clock == null:
		clock = Playout.new(RATE)
	ring = 0
	taken_total = 0
	mixed = 0
	internal = []
	pull()  # play(): the resampler's first pull, from an empty generator
	clock.restart(CAPACITY - ring)


func pull() -> void:
	var real := PULL if ring >= PULL else ring
	for i in range(PULL):
		internal.append(taken_total + i if i < real else -1)
	ring -= real
	taken_total += real
	mixed += PULL


func mix() -> void:
	var labels := []
	for i in range(BLOCK):
		if internal.size() == 0:
			pull()
		labels.append(internal.pop_front())
	blocks.append([now, labels])
	last_mix = now


# Reply frames that have come out of the speaker by now (a frame is out once its time
# has come: the block's last frame LATENCY after the mix, the others before it).
func truth() -> int:
	while counted_blocks < blocks.size() and blocks[counted_blocks][0] + LATENCY <= now:
		for label in blocks[counted_blocks][1]:
			if label >= 0:
				counted_real += 1
		counted_blocks += 1
	var heard := counted_real
	for k in range(counted_blocks, blocks.size()):
		var last_plays: float = blocks[k][0] + LATENCY
		var labels: Array = blocks[k][1]
		for j in range(BLOCK):
			if last_plays - float(BLOCK - 1 - j) / RATE <= now and labels[j] >= 0:
				heard += 1
	return heard


func arrive(item: String, frames: int) -> void:
	if clock.is_cut(item):
		return
	queue += frames
	if queue > queued_max:
		queued_max = queue
	queued_items.append([item, frames])
	clock.write(item, frames)


func sample() -> void:
	clock.observe(float(mixed) / RATE, CAPACITY - ring, now - last_mix, LATENCY)


func process() -> void:
	sample()
	var room := CAPACITY - ring
	var n := room if room < queue else queue
	if n > 0:
		ring += n
		queue -= n
		clock.push(n)
		var left := n
		while left > 0:
			var head: Array = queued_items[0]
			var take: int = head[1] if head[1] <= left else left
			handed[head[0]] = handed.get(head[0], 0) + take
			head[1] -= take
			left -= take
			if head[1] == 0:
				queued_items.pop_front()
	var waiting := []
	for cue in cues:
		var state: int = clock.state(cue[0], cue[1])
		if state == Playout.DUE:
			var hit := {
				"item": cue[0],
				"name": cue[2],
				"audio_start_ms": cue[1],
				"at_s": now,
				"true_heard_ms": heard_ms_of(cue[0], truth()),
				"handed_ms": handed.get(cue[0], 0) * 1000.0 / RATE,
			}
			fired.append(hit)
		elif state == Playout.WAIT:
			waiting.append(cue)
		else:
			dropped.append(cue[2])
	cues = waiting
	track.append([clock.heard_frames(), truth()])


# Milliseconds of reply `item` among the first `frames` reply frames.
func heard_ms_of(item: String, frames: int) -> float:
	var start: int = starts[item][0]
	var length: int = starts[item][1]
	var got := frames - start
	if got < 0:
		got = 0
	if got > length:
		got = length
	return got * 1000.0 / RATE


# Runs the world until `until` s; arrivals: [time, item, frames], in time order.
func run(until: float, arrivals: Array, actions: Array = []) -> void:
	while now < until:
		if now >= next_mix:
			mix()
			next_mix += float(BLOCK) / RATE
		while arrivals.size() > 0 and arrivals[0][0] <= now:
			var a: Array = arrivals.pop_front()
			arrive(a[1], a[2])
		while actions.size() > 0 and actions[0][0] <= now:
			var act: Array = actions.pop_front()
			call(act[1])
		if now >= next_frame:
			process()
			next_frame += FRAME_S
		now += TICK_S


func schedule(item: String, at: float, every: float, chunk_ms: int, total_ms: int) -> Array:
	var out := []
	var t := at
	var done := 0
	while done < total_ms:
		var ms := chunk_ms if done + chunk_ms <= total_ms else total_ms - done
		out.append([t, item, ms * RATE / 1000])
		done += ms
		t += every
	return out


func note_item(item: String, total_ms: int) -> void:
	var start := 0
	for k in starts:
		start += starts[k][1]
	starts[item] = [start, total_ms * RATE / 1000]


func summary() -> Dictionary:
	var early := 0
	var late := 0
	for pair in track:
		if pair[0] - pair[1] > early:
			early = pair[0] - pair[1]
		if pair[1] - pair[0] > late:
			late = pair[1] - pair[0]
	return {
		"rate": RATE,
		"block": BLOCK,
		"latency_ms": LATENCY * 1000.0,
		"frame_ms": FRAME_S * 1000.0,
		"fired": fired,
		"dropped": dropped,
		"max_early_frames": early,
		"max_late_frames": late,
		"frames": track.size(),
		"queued_max_ms": queued_max * 1000.0 / RATE,
	}


# Reply a (2 s) arrives in 100 ms chunks every 50 ms: faster than it plays.
func steady() -> Dictionary:
	start()
	note_item("item_a", 2000)
	for ms in [0, 500, 1000, 1500]:
		cues.append(["item_a", ms, "sentence@%d" % ms])
	cues.append(["item_a", 2000, "action@end"])  # a stage direction after the last word
	var arrivals := schedule("item_a", 0.2, 0.05, 100, 2000)
	run(1.0, arrivals)
	clock.finish("item_a")
	run(3.5, arrivals)
	var out := summary()
	out["pending_after"] = clock.pending()
	out["unfinished_after"] = clock.unfinished()
	out["heard_ms_after"] = clock.heard_ms()
	return out


# Reply a's first 500 ms, then nothing for a second (the generator runs dry), then the rest.
func underrun() -> Dictionary:
	start()
	note_item("item_a", 1500)
	for ms in [0, 400, 600, 1000]:
		cues.append(["item_a", ms, "sentence@%d" % ms])
	var arrivals := schedule("item_a", 0.1, 0.02, 100, 500)
	arrivals += schedule("item_a", 1.5, 0.02, 100, 1000)
	run(3.5, arrivals)
	var out := summary()
	out["heard_ms_after"] = clock.heard_ms()
	return out


# The player barges in: the voice stops (PersonaeVoice.stop_speaking()).
func stop_now() -> void:
	heard_at_stop = truth()
	handed_at_stop = handed.get("item_a", 0) * 1000.0 / RATE
	sample()  # as PersonaeVoice.stop_speaking(): the clock as of now
	unfinished_at_stop = clock.unfinished()  # what the voice cancels first
	var pending := []
	for cue in cues:
		pending.append(cue[0])
	truncations = clock.stop(pending)
	for cue in cues:
		dropped.append(cue[2])
	cues = []
	# the voice starts a fresh playback: the generator and the queue are dropped
	ring = 0
	queue = 0
	queued_items = []
	internal = []
	blocks = []
	counted_blocks = 0
	counted_real = 0
	start()


# Reply a (3 s) arrives within a second, reply b (1 s) right after it; the player barges
# in 1.3 s in. More audio arrives after the stop (in flight).
func barge() -> Dictionary:
	start()
	note_item("item_a", 3000)
	note_item("item_b", 1000)
	for ms in [0, 1000, 2000]:
		cues.append(["item_a", ms, "a@%d" % ms])
	cues.append(["item_b", 0, "b@0"])
	cues.append(["item_c", 0, "c@0"])  # a reply whose cue came before any audio
	var arrivals := schedule("item_a", 0.1, 0.02, 200, 3000)
	arrivals += schedule("item_b", 0.5, 0.02, 200, 1000)
	arrivals.append([1.35, "item_a", 2400])  # in flight when the voice stopped
	arrivals.append([1.36, "item_c", 2400])
	run(2.5, arrivals, [[1.3, "stop_now"]])
	var out := summary()
	out["truncations"] = truncations
	out["true_heard_a_ms"] = heard_ms_of("item_a", heard_at_stop)
	out["handed_a_ms"] = handed_at_stop
	out["written_after"] = clock.written
	out["unfinished_at_stop"] = unfinished_at_stop
	out["cut"] = [clock.is_cut("item_a"), clock.is_cut("item_b"), clock.is_cut("item_c")]
	out["state_after"] = clock.state("item_a", 2500)
	return out


# Reply a (2 s, more than the generator holds: the rest waits in the voice's queue), then
# reply b (1 s) queued behind it before a has played: b's cues are timed from where b
# starts, not from the start of a or from b's arrival.
func two() -> Dictionary:
	start()
	note_item("item_a", 2000)
	note_item("item_b", 1000)
	for ms in [0, 500, 1500]:
		cues.append(["item_a", ms, "a@%d" % ms])
	for ms in [0, 500]:
		cues.append(["item_b", ms, "b@%d" % ms])
	var arrivals := schedule("item_a", 0.1, 0.01, 250, 2000)
	arrivals += schedule("item_b", 0.3, 0.01, 250, 1000)
	run(0.5, arrivals)
	clock.finish("item_a")
	clock.finish("item_b")
	run(4.0, arrivals)
	var out := summary()
	out["heard_ms_of"] = [clock.heard_ms_of("item_a"), clock.heard_ms_of("item_b")]
	out["current_after"] = clock.current_item()
	return out
