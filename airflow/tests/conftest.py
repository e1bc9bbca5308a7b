import sys
from pathlib import Path

# Airflow puts the DAG folder on sys.path when it parses DAGs; the tests import from it too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dags"))
