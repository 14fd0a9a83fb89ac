// Package docs holds the project's documentation. Its test keeps the
// annotation reference in step with the Go types the parser decodes into.
package docs
