# syntax=docker/dockerfile:1
#
# The b2b pipeline's Airflow image: the official Airflow image, extended as the
# Airflow docker-stack docs describe (pip install as the airflow user, Airflow
# pinned so the install cannot move it). Airflow is pinned twice, by the base
# image tag and by constraints.txt; tests/test_docker_compose.py checks that
# both agree with the apache-airflow pin in pyproject.toml.
#
#   /opt/airflow/dags     the DAGs (dags/)
#   /opt/airflow/plugins  the b2b_pipeline package source (plugins/)
#   /opt/b2b              the project: pyproject.toml, constraints.txt,
#                         plugins/, dbt_project/, expectations/
#   /opt/b2b/drop         mount point of the file drop (B2B_SOURCE_DIR)
#   /opt/airflow/b2b_home B2B_HOME: reports, logs (a volume in docker-compose.yml)
FROM apache/airflow:3.3.2-python3.11

ENV B2B_PROJECT_DIR=/opt/b2b \
    B2B_HOME=/opt/airflow/b2b_home \
    B2B_SOURCE_DIR=/opt/b2b/drop

# The directories the project owns. Group 0 gets the owner's rights, as in the
# base image, so a container run with another uid (AIRFLOW_UID) and gid 0 can
# still write B2B_HOME and dbt's target/ and logs/.
USER root
RUN mkdir -p /opt/b2b/plugins /opt/b2b/dbt_project /opt/b2b/expectations /opt/b2b/drop \
        /opt/airflow/b2b_home \
    && chown -R airflow:0 /opt/b2b /opt/airflow/b2b_home \
    && chmod -R g+rwX /opt/b2b /opt/airflow/b2b_home
USER airflow

# Dependencies first, so that editing a DAG or a dbt model does not reinstall them.
# README.md is the package's readme (pyproject.toml), needed by the build.
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/b2b/
COPY --chown=airflow:0 plugins/ /opt/b2b/plugins/
RUN pip install --no-cache-dir -c /opt/b2b/constraints.txt "apache-airflow==${AIRFLOW_VERSION}" /opt/b2b \
    && rm -rf /opt/b2b/build /opt/b2b/plugins/*.egg-info

COPY --chown=airflow:0 dbt_project/ /opt/b2b/dbt_project/
COPY --chown=airflow:0 expectations/ /opt/b2b/expectations/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 dags/ /opt/b2b/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
# the DAG renders its dbt task group from the compiled manifest: compile it at build time
# (dbt parse reads the profile's variables but connects to nothing)
RUN B2B_PG_HOST=warehouse B2B_PG_USER=parse B2B_PG_DBNAME=parse \
    dbt parse --project-dir /opt/b2b/dbt_project --profiles-dir /opt/b2b/dbt_project
USER root
RUN chmod -R g+rwX /opt/b2b
USER airflow

WORKDIR /opt/airflow
