package mockapi

import (
	"encoding/json"
	"errors"
	"reflect"
)

// decodeRequest parses a request body, turning JSON errors into the API's
// invalid_request_error wording.
func decodeRequest(body []byte, req *messagesRequest) *apiError {
	err := json.Unmarshal(body, req)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return invalidRequest("%s: Input should be a valid %s", field, jsonKind(typeErr.Type))
	case errors.As(err, &syntaxErr):
		return invalidRequest("There was an error parsing the body of your request: %v (at byte %d)", syntaxErr, syntaxErr.Offset)
	case errors.Is(err, errContentShape):
		return invalidRequest("content: %v", err)
	default:
		return invalidRequest("There was an error parsing the body of your request: %v", err)
	}
}

// jsonKind names a Go type the way the API's validation messages name JSON
// types.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list"
	default:
		return "dictionary"
	}
}
