package console

import (
	"fmt"
	"html/template"
	"time"
)

// pageNames are the pages, each a template file under templates/ drawn
// inside layout.html.
var pageNames = []string{"runs", "run", "task", "history", "workflows", "workflow", "functions", "events", "login", "error"}

var templateFuncs = template.FuncMap{
	"time": formatTime,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return formatDuration(time.Since(t).Round(time.Second)) + " ago"
	},
	"json": prettyJSON,
	"short": func(id string) string {
		if len(id) > 13 {
			return id[:13] + "…"
		}
		return id
	},
	"sprintf": fmt.Sprintf,
}

func parsePages() (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}
