package auth

import "errors"

// FieldError is one problem with a setting: Field names it as the Go field
// of the settings type ("ClaimsToHeaders[email]", "Header"), for the
// snapshot compiler to map back to what the user wrote.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// problems collects FieldErrors and joins them.
type problems []error

func (p *problems) add(field, reason string) { *p = append(*p, &FieldError{field, reason}) }

func (p problems) err() error { return errors.Join(p...) }
