// Package htmltest reads the pages htmlreport writes the way a browser does (golang.org/x/net/html, the
// HTML5 parsing algorithm), for tests that assert on the document rather than on its text.
package htmltest

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// Parse parses a page; it fails the test when the page is not HTML.
func Parse(t testing.TB, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("the page does not parse as HTML: %v", err)
	}
	return doc
}

// All returns the elements under n named tag ("" for any) that have every class given, in document order.
func All(n *html.Node, tag string, classes ...string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (tag == "" || n.Data == tag) && HasClass(n, classes...) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

// Attr is n's attribute key, "" when absent.
func Attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// HasClass reports whether n's class attribute holds every class given.
func HasClass(n *html.Node, classes ...string) bool {
	have := strings.Fields(Attr(n, "class"))
	for _, c := range classes {
		found := false
		for _, h := range have {
			found = found || h == c
		}
		if !found {
			return false
		}
	}
	return true
}

// Text is the text under n, as textContent reads it.
func Text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// ExternalRefs lists what would make the page load something: <script>, <link>, <iframe>, <object>,
// <embed> and <base> elements, and every src, href, srcset, action, data or poster attribute (any URL
// reference, not only http ones: a self-contained page needs none).
func ExternalRefs(doc *html.Node) []string {
	var out []string
	for _, n := range All(doc, "") {
		switch n.Data {
		case "script", "link", "iframe", "object", "embed", "base":
			out = append(out, "<"+n.Data+">")
		}
		for _, a := range n.Attr {
			switch strings.ToLower(strings.TrimPrefix(a.Key, "xlink:")) {
			case "src", "href", "srcset", "action", "data", "poster", "formaction":
				out = append(out, "<"+n.Data+" "+a.Key+"="+a.Val+">")
			}
		}
		if n.Data == "style" && (strings.Contains(Text(n), "url(") || strings.Contains(Text(n), "@import")) {
			out = append(out, "<style> with url() or @import")
		}
	}
	return out
}
