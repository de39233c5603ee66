package http

// Strict request bodies. Every JSON body is read against the Go type it is
// decoded into, before encoding/json fills it in:
//
//   - a key the type does not know (by its exact json name) is 422
//     validation_failed, `fields` naming each one with its path
//     (`tiers[0].limt`: "unknown field");
//   - a value of the wrong type is 400 invalid_json saying what is wanted
//     and where (`price must be an integer (cents)`);
//   - a key given twice is 400 invalid_json;
//   - a field tagged `required:"true"` that is absent or null is 422
//     "is required"; any other null stays "absent", as encoding/json has it;
//   - the body itself must be a JSON object (`null` is not).
//
// Free-form values (map[string]any, json.RawMessage, any) take any JSON; the
// keys of other maps are free, their values are checked. A field's `want`
// tag says what its scalar values must be, in words, for the messages
// (`want:"an integer (cents)"`); without one the Go type says it.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/dream-api/dream-api/engine"
)

// maxBodyProblems is the most problems one error lists; a body of a
// hundred thousand unknown keys gets a short answer.
const maxBodyProblems = 20

// decode parses a JSON body into v, a pointer to a struct, strictly (see
// above). An empty body is allowed when optional (v is then left as it
// is); `null` never is.
func decode(body []byte, v any, optional bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return engine.Errorf(engine.EINVALIDJSON, "A JSON body is required.")
	}
	if err := checkBody(body, reflect.TypeOf(v).Elem()); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		// checkBody found nothing wrong; this would be a gap in it.
		return engine.Errorf(engine.EINVALIDJSON, "The body is not valid JSON of the expected shape.")
	}
	return nil
}

// checkBody reports what is wrong with body as a value of t, or nil.
func checkBody(body []byte, t reflect.Type) error {
	if !json.Valid(body) {
		var se *json.SyntaxError
		if err := json.Unmarshal(body, new(json.RawMessage)); errors.As(err, &se) {
			return engine.Errorf(engine.EINVALIDJSON, "The body is not valid JSON (at byte %d: %s).", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
		}
		return engine.Errorf(engine.EINVALIDJSON, "The body is not valid JSON.")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	c := &bodyChecker{d: d}
	tok, err := d.Token()
	if err != nil {
		return engine.Errorf(engine.EINVALIDJSON, "The body is not valid JSON.")
	}
	if tok != json.Delim('{') {
		return engine.Errorf(engine.EINVALIDJSON, "The body must be a JSON object, not %s.", describeToken(tok))
	}
	if err := c.object(t, "", ""); err != nil {
		return engine.Errorf(engine.EINVALIDJSON, "The body is not valid JSON.")
	}
	return c.err()
}

// bodyProblem is one thing wrong with a body; typeErr ones are 400.
type bodyProblem struct {
	engine.FieldError
	typeErr bool
}

// bodyChecker walks the tokens of a body against a type.
type bodyChecker struct {
	d        *json.Decoder
	problems []bodyProblem
	more     int             // problems past maxBodyProblems
	skipped  json.RawMessage // the buffer of skip
}

func (c *bodyChecker) add(path, msg string, typeErr bool) {
	if len(c.problems) == maxBodyProblems {
		c.more++
		return
	}
	c.problems = append(c.problems, bodyProblem{engine.FieldError{Field: path, Message: msg}, typeErr})
}

// err is the error of the problems found: 400 invalid_json when a value has
// the wrong type (the type problems first), else 422 validation_failed.
func (c *bodyChecker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	var types, others []engine.FieldError
	for _, p := range c.problems {
		if p.typeErr {
			types = append(types, p.FieldError)
		} else {
			others = append(others, p.FieldError)
		}
	}
	fields := append(types, others...)
	n := len(fields) - 1 + c.more
	if len(types) > 0 {
		msg := types[0].Field + " " + types[0].Message
		if n > 0 {
			msg += fmt.Sprintf(" (and %d more)", n)
		}
		return &engine.Error{Code: engine.EINVALIDJSON, Message: msg + ".", Fields: fields}
	}
	msg := fields[0].Field + ": " + fields[0].Message
	if n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return &engine.Error{Code: engine.EVALIDATION, Message: msg, Fields: fields}
}

// object reads the members of an object of type t (a struct or a map; its
// '{' is read) at path. want is the field's `want` tag, for map values.
func (c *bodyChecker) object(t reflect.Type, path, want string) error {
	if t.Kind() == reflect.Map {
		for c.d.More() {
			key, err := c.key()
			if err != nil {
				return err
			}
			if err := c.value(t.Elem(), join(path, key), want); err != nil {
				return err
			}
		}
		_, err := c.d.Token() // '}'
		return err
	}
	bs := structOf(t)
	var seen map[string]bool
	for c.d.More() {
		key, err := c.key()
		if err != nil {
			return err
		}
		p := join(path, key)
		f := bs.fields[key]
		if f == nil {
			c.add(p, "unknown field", false)
			if err := c.skip(); err != nil {
				return err
			}
			continue
		}
		if seen == nil {
			seen = make(map[string]bool, len(bs.fields))
		}
		if seen[key] {
			c.add(p, "is given more than once", true)
		}
		seen[key] = true
		if err := c.field(f, p); err != nil {
			return err
		}
	}
	for _, f := range bs.required {
		if !seen[f.name] {
			c.add(join(path, f.name), "is required", false)
		}
	}
	_, err := c.d.Token() // '}'
	return err
}

func (c *bodyChecker) key() (string, error) {
	tok, err := c.d.Token()
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("object key %v", tok)
	}
	return key, nil
}

// field reads the value of struct field f at path: null for a required
// field is "is required".
func (c *bodyChecker) field(f *bodyField, path string) error {
	if !f.required {
		return c.value(f.typ, path, f.want)
	}
	tok, err := c.d.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		c.add(path, "is required", false)
		return nil
	}
	return c.valueFrom(tok, f.typ, path, f.want)
}

// value reads one value of type t at path.
func (c *bodyChecker) value(t reflect.Type, path, want string) error {
	if free(t) {
		return c.skip()
	}
	tok, err := c.d.Token()
	if err != nil {
		return err
	}
	return c.valueFrom(tok, t, path, want)
}

// free reports whether t takes any JSON (json.RawMessage, interfaces).
func free(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t == rawMessageType || t.Kind() == reflect.Interface
}

// valueFrom reads the rest of a value of type t at path whose first token
// was tok.
func (c *bodyChecker) valueFrom(tok json.Token, t reflect.Type, path, want string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if tok == nil || free(t) {
		return c.skipRest(tok) // null is absent, as encoding/json has it
	}
	wrong := func(what string) error {
		c.add(path, "must be "+what, true)
		return c.skipRest(tok)
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			return wrong("an object")
		}
		return c.object(t, path, want)
	case reflect.Map:
		if tok != json.Delim('{') {
			return wrong("an object")
		}
		return c.object(t, path, want)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // []byte: base64 in JSON
			s, ok := tok.(string)
			if _, err := base64.StdEncoding.DecodeString(s); !ok || err != nil {
				return wrong(orDefault(want, "a base64 string"))
			}
			return nil
		}
		if tok != json.Delim('[') {
			return wrong("an array")
		}
		for i := 0; c.d.More(); i++ {
			if err := c.value(t.Elem(), path+"["+strconv.Itoa(i)+"]", want); err != nil {
				return err
			}
		}
		_, err := c.d.Token() // ']'
		return err
	case reflect.String:
		if _, ok := tok.(string); !ok {
			return wrong(orDefault(want, "a string"))
		}
	case reflect.Bool:
		if _, ok := tok.(bool); !ok {
			return wrong(orDefault(want, "true or false"))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return wrong(orDefault(want, "an integer"))
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return wrong(orDefault(want, fmt.Sprintf("an integer from %d to %d", int64(-1)<<(t.Bits()-1), int64(1<<(t.Bits()-1)-1))))
			}
			return wrong(orDefault(want, "an integer"))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := tok.(json.Number)
		if !ok {
			return wrong(orDefault(want, "a non-negative integer"))
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			return wrong(orDefault(want, fmt.Sprintf("an integer from 0 to %d", uint64(math.MaxUint64)>>(64-t.Bits()))))
		}
	case reflect.Float32, reflect.Float64:
		n, ok := tok.(json.Number)
		if !ok {
			return wrong(orDefault(want, "a number"))
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			return wrong(orDefault(want, "a number in range"))
		}
	default:
		// A type we do not decode bodies into; encoding/json decides.
		return c.skipRest(tok)
	}
	return nil
}

// skip reads one value, whatever it is (in one piece: faster than its
// tokens).
func (c *bodyChecker) skip() error {
	return c.d.Decode(&c.skipped)
}

// skipRest reads the rest of a value whose first token was tok.
func (c *bodyChecker) skipRest(tok json.Token) error {
	if tok != json.Delim('{') && tok != json.Delim('[') {
		return nil
	}
	for depth := 1; depth > 0; {
		tok, err := c.d.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orDefault(want, def string) string {
	if want != "" {
		return want
	}
	return def
}

// describeToken names the kind of a JSON value by its first token.
func describeToken(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case bool:
		return "true or false"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	}
	if tok == json.Delim('[') {
		return "an array"
	}
	return "that"
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// bodyStruct is what checkBody knows of a struct type: its fields by exact
// json name.
type bodyStruct struct {
	fields   map[string]*bodyField
	required []*bodyField
}

type bodyField struct {
	name     string
	typ      reflect.Type
	want     string
	required bool
}

var bodyStructs sync.Map // reflect.Type → *bodyStruct

// structOf returns the fields of struct type t as encoding/json names them
// (exported fields, `json` tag names, "-" skipped, embedded structs
// flattened).
func structOf(t reflect.Type) *bodyStruct {
	if bs, ok := bodyStructs.Load(t); ok {
		return bs.(*bodyStruct)
	}
	bs := &bodyStruct{fields: map[string]*bodyField{}}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f := &bodyField{name: name, typ: sf.Type, want: sf.Tag.Get("want"), required: sf.Tag.Get("required") == "true"}
			bs.fields[name] = f
			if f.required {
				bs.required = append(bs.required, f)
			}
		}
	}
	walk(t)
	got, _ := bodyStructs.LoadOrStore(t, bs)
	return got.(*bodyStruct)
}
