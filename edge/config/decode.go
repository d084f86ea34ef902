package config

// yaml.v3's own errors do not name the key path: an unknown key is
// reported by its last part (`line 2: field adr not found`) and a wrong
// type by no key at all (`cannot unmarshal !!seq into string`), which in
// flow style does not even say which field. It also truncates 2.9 to 2 for
// an int. So Parse decodes the document into a yaml.Node and walks it here
// together with the Config, naming every error by its full key path the way
// Validate does: "topics[0].sync: expected a string, got a list (line 1)".

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DecodeTopicSpec decodes one topic's settings from YAML or JSON text by
// the rules of a config file (the HTTP API takes topic configs this way):
// errors are named by key path within the spec, "partitions: 2.9 is not
// an integer (line 1)", and an unknown key is "zz: unknown key (line 1)".
// Unlike a config file, the text is not the operator's: ${NAME} is not
// expanded (it would read the server's environment for a client).
func DecodeTopicSpec(text []byte, s *TopicSpec) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return err
	}
	return decodeNode(&doc, s, false)
}

// decodeNode sets *out from the document node doc, expanding ${NAME} in
// values when env says so. Keys the document leaves out, and keys set to
// null, keep the values *out already has. It reports every error, not
// only the first.
func decodeNode(doc *yaml.Node, out any, env bool) error {
	d := decoder{env: env}
	for _, n := range doc.Content {
		d.decode("", n, reflect.ValueOf(out).Elem())
	}
	return errors.Join(d.errs...)
}

type decoder struct {
	env  bool // expand ${NAME} from the environment
	errs []error
}

// fail records "path: message (line N)".
func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, fmt.Errorf("%s (line %d)", msg, n.Line))
}

func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	n = resolve(n)
	if d.env && n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		val, err := expandEnv(n.Value)
		if err != nil {
			d.fail(path, n, "%v", err)
			return
		}
		// A copy: an anchored value reached again through an alias must
		// be expanded from its text, not from this result.
		cp := *n
		n = &cp
		n.Value = val
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = "" // a plain value is typed by what it now says: ${PORT} can be an int
			if n.ShortTag() == "!!null" {
				// Never null, which would keep the default: MQTT_ADDR=
				// for `addr: ${MQTT_ADDR}` means "", a listener off.
				n.Tag = "!!str"
			}
		}
	}
	if n.ShortTag() == "!!null" {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			// Size and Duration name the line for plain yaml.Unmarshal;
			// here fail does.
			msg, _ := strings.CutPrefix(err.Error(), fmt.Sprintf("line %d: ", n.Line))
			d.fail(path, n, "%s", msg)
		}
		return
	}
	switch {
	case v.Kind() == reflect.Struct:
		d.mapping(path, n, v)
	case v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(path+"["+strconv.Itoa(i)+"]", item, s.Index(i))
		}
		v.Set(s)
	case n.Kind != yaml.ScalarNode || v.Kind() == reflect.Slice:
		d.fail(path, n, "expected %s, got %s", want(v.Type()), describe(n))
	case v.CanInt():
		// Checked here because yaml.v3 would turn 2.9 into 2.
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(path, n, "%s is not an integer", describe(n))
		} else if bits := v.Type().Bits(); v.OverflowInt(i) {
			d.fail(path, n, "%s is not between %d and %d", n.Value, int64(-1)<<(bits-1), uint64(1)<<(bits-1)-1)
		} else {
			v.SetInt(i)
		}
	case v.CanUint():
		// Likewise: yaml.v3 would turn 118.9 into 118.
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(path, n, "%s is not an integer", describe(n))
		} else if i < 0 || v.OverflowUint(uint64(i)) {
			d.fail(path, n, "%s is not between 0 and %d", n.Value, uint64(1)<<v.Type().Bits()-1)
		} else {
			v.SetUint(uint64(i))
		}
	default:
		if n.Decode(v.Addr().Interface()) != nil {
			d.fail(path, n, "expected %s, got %s", want(v.Type()), describe(n))
		}
	}
}

// mapping sets the fields of struct v from the mapping n, by their yaml tags.
func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "expected a mapping, got %s", describe(n))
		return
	}
	fields := map[string]reflect.Value{}
	for f := range v.Type().Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && name != "" && name != "-" {
			fields[name] = v.FieldByIndex(f.Index)
		}
	}
	// Merged mappings (<<: *defaults) go first, so the keys written next
	// to them win; of several merged mappings, the first listed wins.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].ShortTag() == "!!merge" {
			merged := resolve(n.Content[i+1])
			if merged.Kind != yaml.SequenceNode {
				d.mapping(path, merged, v)
				continue
			}
			for _, m := range slices.Backward(merged.Content) {
				d.mapping(path, resolve(m), v)
			}
		}
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		field, known := fields[k.Value]
		key := join(path, k.Value)
		switch {
		case k.ShortTag() == "!!merge":
		case k.Kind != yaml.ScalarNode:
			d.fail(path, k, "expected a key, got %s", describe(k))
		case !known:
			d.fail(key, k, "unknown key")
		case seen[k.Value] != nil:
			d.fail(key, k, "duplicate key, first on line %d", seen[k.Value].Line)
		default:
			seen[k.Value] = k
			d.decode(key, n.Content[i+1], field)
		}
	}
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// join appends a key to a path, quoting a key that is not a plain name.
func join(path, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool {
		return !(r == '_' || r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// want names what a value of type t is written as.
func want(t reflect.Type) string {
	switch {
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}

// describe names what n is: a list, a mapping, or its value, quoted when
// it is a string ("3x" but 2.9).
func describe(n *yaml.Node) string {
	switch n = resolve(n); {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.ShortTag() == "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// expandEnv replaces each ${NAME} with the environment variable's value;
// an unset variable is an error, never a silent empty string. Only the
// braced form is expanded: bcrypt and SCRAM hashes are full of bare $.
func expandEnv(s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unclosed ${ in %q", s)
		}
		name := s[i+2 : i+j]
		v, ok := os.LookupEnv(name)
		if !ok || name == "" {
			return "", fmt.Errorf("${%s}: the environment variable is not set", name)
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+1:]
	}
}
