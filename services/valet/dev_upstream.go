package main

import (
	"encoding/json"
	"net/http"

	"github.com/valetauth/valet/services/edge"
)

// demoUpstream is the demo API behind the edge (valet dev runs the edge in reverse-proxy mode): it answers every
// request with the identity the edge established.
func demoUpstream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"message":   "hello from the Valet dev demo upstream",
		"method":    r.Method,
		"path":      r.URL.Path,
		"subject":   r.Header.Get(edge.HeaderSubject),
		"client_id": r.Header.Get(edge.HeaderClient),
		"scope":     r.Header.Get(edge.HeaderScope),
		"jti":       r.Header.Get(edge.HeaderTokenID),
	})
}
