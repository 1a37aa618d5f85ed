package bench

import (
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// legendGap separates the plot area from the legend beside it.
const legendGap = 8

// SavePlot writes p to path as a w×h PNG with its legend in a column to
// the right of the plot rather than inside the data area, where it would
// hide curves that run through its corner. A plot without legend entries
// takes the whole width.
func SavePlot(p *plot.Plot, w, h vg.Length, path string) error {
	return savePanels(path, w, h, p.Legend, p)
}

// savePanels draws panels side by side, sharing one legend in a column to
// their right; the panels' own legends are not drawn.
func savePanels(path string, w, h vg.Length, legend plot.Legend, panels ...*plot.Plot) error {
	img := vgimg.New(w, h)
	dc := draw.New(img)
	saved := make([]plot.Legend, len(panels))
	for i, p := range panels {
		saved[i], p.Legend = p.Legend, plot.NewLegend()
	}
	defer func() {
		for i, p := range panels {
			p.Legend = saved[i]
		}
	}()

	area := dc
	r := legend.Rectangle(dc)
	if width := r.Max.X - r.Min.X; width > 0 {
		width += 2 * legendGap
		area = draw.Crop(dc, 0, -width, 0, 0)
		legend.Left, legend.Top = true, true
		legend.XOffs, legend.YOffs = 0, 0
		// The column starts level with the plot area, below the title.
		top := vg.Length(0)
		if p := panels[0]; p.Title.Text != "" {
			top = p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
		}
		legend.Draw(draw.Crop(dc, w-width+legendGap, 0, 0, -top))
	}
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Points(12)}
	for i, p := range panels {
		p.Draw(tiles.At(area, i, 0))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
