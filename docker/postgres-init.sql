-- The Optuna study's database, beside MLflow's on the same server (docker/compose.yaml). PostgreSQL's
-- image runs this once, when it creates its data volume.
CREATE DATABASE optuna OWNER mlflow;
