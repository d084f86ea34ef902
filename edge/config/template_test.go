package config

import "testing"

func TestTemplateRender(t *testing.T) {
	headers := map[string]string{"site": "north", "empty": "", "wild": "a/+"}
	f := RecordFields{Key: []byte("pump1"), Partition: 3, Topic: "cmds", Header: func(n string) ([]byte, bool) {
		v, ok := headers[n]
		return []byte(v), ok
	}}
	for _, tc := range []struct {
		tmpl, want string
		ok         bool
	}{
		{"devices/{key}/cmd", "devices/pump1/cmd", true},
		{"{topic}/{partition}/{header:site}", "cmds/3/north", true},
		{"plain/topic", "plain/topic", true},
		{"x/{header:missing}", "", false},
		{"x/{header:empty}", "", false},
		{"x/{header:wild}", "", false},
	} {
		tm, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		got, err := tm.Render(f)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %q, %v; want %q (ok %v)", tc.tmpl, got, err, tc.want, tc.ok)
		}
	}
	noKey := f
	noKey.Key = nil
	tm, _ := ParseTemplate("d/{key}")
	if _, err := tm.Render(noKey); err == nil {
		t.Error("a record without a key rendered")
	}
}
