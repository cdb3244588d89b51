"""Go's text/template as docker's --format runs it (reconciler/gotemplate.py): each expected
text below is what docker 28's CLI printed for the same template over the same values
(`docker inspect -f`, `docker ps --format`, against dockerd on the test host)."""

from __future__ import annotations

import pytest

from reconciler import gotemplate, listing
from reconciler.gotemplate import TemplateError

# the part of a `docker inspect` document the templates below read
DOC = gotemplate.document({
    "Id": "478565833d99", "Name": "/fmtcheck-a",
    "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "OOMKilled": False,
              "Dead": False, "Pid": 28881, "ExitCode": 0, "Error": "", "StartedAt": "2026-12-07T18:15:10.899376354Z",
              "FinishedAt": "0001-01-01T00:00:00Z"},
    "Config": {"Image": "fmtcheck/busybox:latest", "Cmd": ["sleep", "3600"], "Volumes": None,
               "Labels": {"app": "web", "tier": "front"}},
}, "container", maps=("Labels", "Volumes"))


def run(template: str, data: object = DOC) -> str:
    return gotemplate.parse(template).execute(data)


@pytest.mark.parametrize(("template", "expected"), [
    ('{{.State.Status}} {{.Config.Image}} {{json .Config.Labels}} {{index .Config.Labels "tier"}} '
     '{{.Config.Labels.nokey}} {{index .Config.Labels "nokey"}}',
     'running fmtcheck/busybox:latest {"app":"web","tier":"front"} front <no value> '),
    ('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}|{{range .Config.Cmd}}[{{.}}]{{end}}|'
     '{{join .Config.Cmd ","}}|{{printf "%s-%d" .Name 3}}|{{println .Name}}|'
     '{{if .State.Running}}yes{{else}}no{{end}}',
     "app=web;tier=front;|[sleep][3600]|sleep,3600|/fmtcheck-a-3|/fmtcheck-a\n|yes"),
    ('{{print 1 2 "a" "b" 3}}|{{println "x" 1}}|{{printf "%5s|%-5s|%d|%q|%v|%x" "ab" "cd" 42 "q\\"t" '
     '.State.Running 255}}|{{len .Name}}|{{index .Config.Cmd 1}}|{{.Config.Cmd}}|{{.Config.Labels}}|{{.State}}|'
     '{{eq .State.Status "running"}}|{{and 1 0}}|{{or 0 "x"}}|{{not ""}}',
     '1 2ab3|x 1\n|   ab|cd   |42|"q\\"t"|true|ff|11|3600|[sleep 3600]|map[app:web tier:front]|'
     '{running true false false false false 28881 0  2026-12-07T18:15:10.899376354Z 0001-01-01T00:00:00Z}|'
     'true|0|x|true'),
    ("{{- /* c */ -}}  {{ .Name -}}   x  {{- .Name }}", "/fmtcheck-ax/fmtcheck-a"),
    ('{{title "hello wor-ld foo_bar"}} {{split "a,b" ","}} {{pad "x" 2 1}}| {{truncate "abcdef" 3}}',
     "Hello Wor-Ld Foo_bar [a b]   x | abc"),
    ('{{if eq .State.Status "exited"}}x{{else if .State.Running}}run{{else}}other{{end}}', "run"),
    ("{{with .State}}{{.Status}}{{end}} {{$n := .Name}}{{$n}} "
     "{{range $i, $c := .Config.Cmd}}{{$i}}{{$c}}{{if eq $i 0}}{{continue}}{{end}}!{{end}}",
     "running /fmtcheck-a 0sleep13600!"),
    ("{{range .Config.Cmd}}{{.}}{{break}}{{end}}|{{range .Config.Volumes}}x{{else}}none{{end}}", "sleep|none"),
    ('{{.Config.Cmd | len | printf "%03d"}} {{printf "%.2f %v %v" 3.14159 1e6 0.5}} {{slice .Name 1 4}}',
     "002 3.14 1e+06 0.5 fmt"),
    ("{{json .State.Running}} {{json .Config.Cmd}} {{json .Config.Volumes}} {{.Config.Volumes}}",
     'true ["sleep","3600"] null <nil>'),
    ("{{`raw\\t`}}{{\"\\tx\"}}", "raw\\t\tx"),
])
def test_templates_print_what_docker_prints(template: str, expected: str) -> None:
    assert run(template) == expected


def test_json_of_a_document_keeps_its_order_and_sorts_its_maps() -> None:
    doc = gotemplate.document({"b": 1, "a": {"z": "<&>", "y": 2}, "Labels": {"z": "1", "a": "2"}}, maps=("Labels",))
    assert run("{{json .}}", doc) == '{"b":1,"a":{"z":"<&>","y":2},"Labels":{"a":"2","z":"1"}}'


@pytest.mark.parametrize(("template", "message"), [
    # (docker's own words, with the column for parse errors too)
    ("{{index .Config.Cmd 5}}",
     'template: :1:2: executing "" at <index .Config.Cmd 5>: error calling index: index out of range: 5'),
    ("{{.Name.Foo}}", 'template: :1:7: executing "" at <.Name.Foo>: can\'t evaluate field Foo in type string'),
    ('{{.Name "x"}}', 'template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'),
    ('{{join .Name ","}}', "wrong type for value; expected []string; got string"),
    ("a\n{{.Name}} {{.Bad}}",
     'template: :2:12: executing "" at <.Bad>: can\'t evaluate field Bad in type container'),
    ("{{.State.Nope}}",
     'template: :1:8: executing "" at <.State.Nope>: can\'t evaluate field Nope in type State'),
    ("{{end}}", "template: :1:0: unexpected {{end}}"),
    ("{{if}}{{end}}", "template: :1:0: missing value for if"),
    ('{{"abc}}', "template: :1:2: unterminated quoted string"),
    ("{{range .Config.Cmd}}", "template: :1:21: unexpected EOF"),
    ("{{nofunc .Name}}", 'template: :1:2: function "nofunc" not defined'),
    ("{{.Name", "template: :1:0: unclosed action"),
    ("{{$x}}", "template: :1:2: undefined variable \"$x\""),
    ("{{break}}", "template: :1:0: {{break}} outside {{range}}"),
    ('{{.Name | "x"}}', "template: :1:10: non executable command in pipeline stage 2"),
])
def test_errors_say_where_and_what_as_go_does(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as raised:
        run(template)
    assert raised.value.message.startswith("template parsing error: ")
    assert message in raised.value.message
    assert raised.value.exit_code == 1                  # as docker's CLI exits
    assert raised.value.stage == ("execute" if "executing" in message or "wrong type" in message else "parse")


def test_an_unknown_field_of_a_row_names_the_fields_it_has() -> None:
    row = gotemplate.Struct("container", {"ID": "abc", "Names": "web"})
    with pytest.raises(TemplateError) as raised:
        run("{{.Name}}", row)
    assert raised.value.hint == "container has .ID, .Names"


def test_rows_as_docker_prints_them() -> None:
    header = gotemplate.Struct("container", {"Names": "NAMES", "State": "STATE"},
                               {"Label": lambda name: name.split(".")[-1].replace("-", " ").replace("_", " ")})

    def row(name: str, state: str, tier: str) -> gotemplate.Struct:
        return gotemplate.Struct("container", {"Names": name, "State": state}, {"Label": lambda k: {"tier": tier}.get(k, "")},
                                 html_json=True, sort_json=True)

    rows = [row("fmtcheck-b", "created", ""), row("fmtcheck-a", "running", "front")]
    # docker ps --format 'table {{.Label "tier"}}\t{{.Names}}' (the \t as typed: two characters)
    assert gotemplate.render_rows('table {{.Label "tier"}}\\t{{.Names}}', rows, header) == (
        "tier      NAMES\n"
        "          fmtcheck-b\n"
        "front     fmtcheck-a\n")
    assert gotemplate.render_rows("table {{json .Names}}\\t{{upper .State}}\\t{{lower .Names}}\\t{{title .State}}",
                                  rows, header) == (
        "NAMES          STATE     NAMES        STATE\n"
        '"fmtcheck-b"   CREATED   fmtcheck-b   Created\n'
        '"fmtcheck-a"   RUNNING   fmtcheck-a   Running\n')
    assert gotemplate.render_rows("  {{.Names}}  ", rows, header) == "fmtcheck-b\nfmtcheck-a\n"
    assert gotemplate.render_rows("{{.Names}}\\n{{.State}}", rows, header) == (
        "fmtcheck-b\ncreated\nfmtcheck-a\nrunning\n")
    assert gotemplate.render_rows("json", [row("<a&b>", "x", "")], header) == (
        '{"Names":"\\u003ca\\u0026b\\u003e","State":"x"}\n')
    assert gotemplate.render_rows("table {{.Names}}", [], header) == "NAMES\n"
    with pytest.raises(TemplateError, match="can't evaluate field Foo"):    # checked with no rows too
        gotemplate.render_rows("table {{.Foo}}", [], header)


def test_the_tabwriter_aligns_as_gos() -> None:
    # Go's elastic tabstops: a column is the tab-ended cells of adjacent lines; minwidth 10, padding 3
    assert gotemplate.tabwriter("a\tbbbbbbbbbbbb\tc\nddd\te\n\nx\ty\n") == (
        "a         bbbbbbbbbbbb   c\n"
        "ddd       e\n"
        "\n"
        "x         y\n")
    assert gotemplate.tabwriter("日本\tx\nab\ty") == "日本      x\nab        y"


def test_inspect_documents_and_json() -> None:
    docs = [gotemplate.document({"Name": "/a", "State": {"Status": "running"}}),
            gotemplate.document({"Name": "/b", "State": {"Status": "exited"}})]
    # inspect takes the template as written: a \t is two characters, not a tab
    assert gotemplate.render_documents("{{.Name}}\\t{{.State.Status}}", docs) == "/a\\trunning\n/b\\texited\n"
    assert gotemplate.render_documents("json", docs) == (
        '[{"Name":"/a","State":{"Status":"running"}},{"Name":"/b","State":{"Status":"exited"}}]\n')
    assert gotemplate.render_documents("table {{.Name}}", docs[:1]) == "table /a\n"


@pytest.mark.parametrize(("seconds", "words"), [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (3599, "59 minutes"), (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"),
    (13 * 86400, "13 days"), (14 * 86400, "2 weeks"), (59 * 86400, "8 weeks"), (60 * 86400, "2 months"),
    (800 * 86400, "2 years"),
])
def test_durations_in_docker_words(seconds: float, words: str) -> None:
    assert listing.human_duration(seconds) == words


def test_every_age_the_cli_prints_is_in_the_same_words() -> None:
    """ps CREATED and STATUS, images CREATED and the templates' ages are one rule: ps said
    "21 days ago" and images "1 week ago" where docker says "3 weeks ago" and "10 days ago"."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    three_weeks, ten_days = ((now - timedelta(days=d)).isoformat() for d in (21, 10))
    assert listing.ago(three_weeks, now) == "3 weeks ago"
    assert listing.status_text({"status": "running", "started_at": three_weeks}, now) == "Up 3 weeks"
    assert listing._image_ago(ten_days, now.timestamp()) == "10 days ago"
    assert listing._image_ago(three_weeks, now.timestamp()) == "3 weeks ago"


def test_go_quote_and_print() -> None:
    assert gotemplate.go_quote('sh -c "echo\tx" \\ é') == '"sh -c \\"echo\\tx\\" \\\\ é"'
    assert gotemplate.go_print(1234567.0) == "1.234567e+06"
    assert gotemplate.go_print(123456.0) == "123456"
    assert gotemplate.go_print(0.0001) == "0.0001"
    assert gotemplate.go_print(0.00001) == "1e-05"
    assert gotemplate.go_print({"b": [1, True], "a": None}) == "map[a:<nil> b:[1 true]]"
