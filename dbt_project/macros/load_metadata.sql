{#
    The load metadata of the base (all-versions) models of the file drop (docs/raw-layer.md).

    with_load_metadata(relation): the body of a base model's `final` CTE. It selects every column
    of `relation` (the model's `renamed` CTE, which ends with the raw row's `_file_id` and `_line`)
    and appends what the file ledger knows of the row's file: its load batch, path, folder date and
    load time. The base tables are incremental and live in the users' warehouses, so the names,
    types and order of these columns are part of their layout:

        _file_id, _line, _batch_id, _file, _folder_date, _loaded_at
#}
{% macro with_load_metadata(relation) -%}
    select
        {{ relation }}.*,
        file_loads.batch_id as _batch_id,
        file_loads.file as _file,
        file_loads.folder_date as _folder_date,
        file_loads.loaded_at as _loaded_at

    from {{ relation }}
    left join {{ source('files', 'file_loads') }} as file_loads
        on {{ relation }}._file_id = file_loads.file_id
{%- endmacro %}
