"""The built-in read-only dashboard (``distillguard dashboard``, or mounted on a worker's web
endpoint): HTML pages and SVG charts over the ClickHouse tables, no JavaScript and no Grafana."""
