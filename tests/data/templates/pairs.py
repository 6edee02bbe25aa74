"""Labelled pairs for `deja eval` from the templated sets: each ticket behind an
instruction paired with its paraphrase behind the same instruction (same
answer) and with the next ticket behind it (another problem, another answer);
and each question of `../multilingual/distinct.jsonl` paired with the next one
in its language (another answer).

    python3 tests/data/templates/pairs.py > /tmp/templated_pairs.jsonl
    deja eval --pairs /tmp/templated_pairs.jsonl
"""
import json
import pathlib

here = pathlib.Path(__file__).parent
instructions = json.loads((here / "instructions.json").read_text())
tickets = [json.loads(line) for line in (here / "tickets.jsonl").read_text().splitlines() if line.strip()]

layouts = {
    "long": lambda t: f"{instructions['long']}\n\nTicket: {t}",
    "short": lambda t: f"{instructions['short']}\n\nTicket: {t}",
    "after": lambda t: f"Customer message:\n{t}\n\n{instructions['after']}",
}
for name, wrap in layouts.items():
    for i, t in enumerate(tickets):
        other = tickets[(i + 1) % len(tickets)]
        print(json.dumps({"a": wrap(t["ticket"]), "b": wrap(t["paraphrase"]), "same": True, "kind": f"{name}-paraphrase"}))
        print(json.dumps({"a": wrap(t["ticket"]), "b": wrap(other["ticket"]), "same": False, "kind": f"{name}-other-ticket"}))

distinct = [json.loads(line) for line in (here / "../multilingual/distinct.jsonl").read_text().splitlines() if line.strip()]
for lang in sorted({q["lang"] for q in distinct}):
    texts = [q["text"] for q in distinct if q["lang"] == lang]
    for i, t in enumerate(texts):
        print(json.dumps({"a": t, "b": texts[(i + 1) % len(texts)], "same": False, "kind": f"{lang}-distinct"}, ensure_ascii=False))
