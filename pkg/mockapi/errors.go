package mockapi

import (
	"fmt"
	"net/http"
)

// ErrorType is the error.type of an Anthropic error body.
type ErrorType string

// The error types the API documents, each tied to one HTTP status.
const (
	ErrInvalidRequest ErrorType = "invalid_request_error"
	ErrAuthentication ErrorType = "authentication_error"
	ErrPermission     ErrorType = "permission_error"
	ErrNotFound       ErrorType = "not_found_error"
	ErrTooLarge       ErrorType = "request_too_large"
	ErrRateLimit      ErrorType = "rate_limit_error"
	ErrAPI            ErrorType = "api_error"
	ErrOverloaded     ErrorType = "overloaded_error"
)

// StatusOverloaded is Anthropic's non-standard 529 status.
const StatusOverloaded = 529

// statusOf maps an error type to its HTTP status.
func statusOf(t ErrorType) int {
	switch t {
	case ErrInvalidRequest:
		return http.StatusBadRequest
	case ErrAuthentication:
		return http.StatusUnauthorized
	case ErrPermission:
		return http.StatusForbidden
	case ErrNotFound:
		return http.StatusNotFound
	case ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case ErrRateLimit:
		return http.StatusTooManyRequests
	case ErrOverloaded:
		return StatusOverloaded
	default:
		return http.StatusInternalServerError
	}
}

// apiError is an error the mock answers with instead of a result.
type apiError struct {
	typ     ErrorType
	message string
}

func (e *apiError) Error() string { return string(e.typ) + ": " + e.message }

func invalidRequest(format string, args ...any) *apiError {
	return &apiError{typ: ErrInvalidRequest, message: fmt.Sprintf(format, args...)}
}

// appendErrorBody appends the documented error body:
// {"type":"error","error":{"type":...,"message":...},"request_id":...}.
func appendErrorBody(buf []byte, t ErrorType, message, requestID string) []byte {
	buf = append(buf, `{"type":"error","error":{"type":"`...)
	buf = append(buf, t...)
	buf = append(buf, `","message":`...)
	buf = appendJSONString(buf, message)
	buf = append(buf, `},"request_id":"`...)
	buf = append(buf, requestID...)
	return append(buf, "\"}"...)
}
