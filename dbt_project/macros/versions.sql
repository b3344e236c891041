{#
    Order of record versions (docs/raw-layer.md), latest first: a later updated_at wins; for equal
    updated_at the later file (_folder_date NULLs first, then _folder_date, then _file_id) and then
    the later _line wins. Unversioned entities (fx_rates) use the file order alone.
#}
{% macro latest_version_first(has_updated_at=true) -%}
    {%- if has_updated_at %}updated_at desc, {% endif -%}
    _folder_date desc nulls last, _file_id desc, _line desc
{%- endmacro %}

{#
    The incremental filter of the base (all-versions) models: only raw rows of files loaded after the
    newest file already typed. The raw layer is append-only and _file_id increases in load order
    (docs/raw-layer.md; each raw table has a BRIN index on _file_id), so nothing older changes.
#}
{% macro new_files_only() -%}
    {%- if is_incremental() %}
    where _file_id > (select coalesce(max(_file_id), -1) from {{ this }})
    {%- endif %}
{%- endmacro %}
