package mockapi

import (
	"encoding/json"
	"strconv"
)

// handleModels serves GET /v1/models (paginated with limit, after_id,
// before_id) and GET /v1/models/{id}.
func (s *Server) handleModels(rc *requestContext, id string) {
	var body any
	if id != "" {
		m, ok := s.models.lookup(id)
		if !ok {
			s.fail(rc, notFoundModel(id))
			return
		}
		body = m.json()
	} else {
		q := rc.r.URL.Query()
		limit := 20
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				s.fail(rc, invalidRequest("limit: Input should be an integer between 1 and 1000"))
				return
			}
			limit = n
		}
		page, e := s.models.page(limit, q.Get("after_id"), q.Get("before_id"))
		if e != nil {
			s.fail(rc, e)
			return
		}
		body = page
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.fail(rc, &apiError{typ: ErrAPI, message: "encoding models: " + err.Error()})
		return
	}
	s.writeJSON(rc, b)
}
