"""Writes an AMFI NAVAll.txt (the newer header, with Plan and Option) for DATE from a
warehouse's scheme master and its NAVs of PREVIOUS moved by +0.1%: the file AMFI would publish
the next evening, for the end-to-end DAG run. Reads the warehouse through `sipline sql`.

usage: navall_for_date.py SIPLINE_BIN WAREHOUSE PREVIOUS DATE OUT
"""

import csv
import io
import subprocess
import sys
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby

sipline, warehouse, previous, day, out = sys.argv[1:6]
query = f"""
SELECT s.scheme_type, s.category, s.fund_house, s.scheme_code, s.isin_growth,
       s.isin_reinvestment, s.scheme_name, s.plan, s.option, n.nav
FROM navs n JOIN schemes s USING (scheme_code)
WHERE n.nav_date = DATE '{previous}'
ORDER BY s.scheme_type, s.category, s.fund_house, s.scheme_code
"""
csv_text = subprocess.run(
    [sipline, "sql", "--format", "csv", "--warehouse", warehouse, query],
    check=True, capture_output=True, text=True,
).stdout
rows = list(csv.DictReader(io.StringIO(csv_text)))
if not rows:
    sys.exit(f"no NAVs dated {previous} in {warehouse}")
stamp = date.fromisoformat(day).strftime("%d-%b-%Y")
lines = ["Scheme Code;ISIN Div Payout/ ISIN Growth;ISIN Div Reinvestment;Scheme Name;Plan;Option;Net Asset Value;Date", " "]
for (kind, category), by_category in groupby(rows, key=lambda r: (r["scheme_type"], r["category"])):
    lines += [f"{kind} Schemes({category})", " "]
    for house, schemes in groupby(by_category, key=lambda r: r["fund_house"]):
        lines += [house, " "]
        for r in schemes:
            nav = (Decimal(r["nav"]) * Decimal("1.001")).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            lines.append(";".join([
                r["scheme_code"], r["isin_growth"] or "-", r["isin_reinvestment"] or "-",
                r["scheme_name"], r["plan"], r["option"], str(nav), stamp,
            ]))
        lines.append(" ")
with open(out, "w", newline="") as f:
    f.write("\r\n".join(lines) + "\r\n")
print(f"{out}: {len(rows)} NAVs dated {day}")
