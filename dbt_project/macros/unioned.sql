{#
    The unioned intermediate models (models/intermediate/unioned): the rows of one entity from the
    staging models of every source system, under one canonical column list.

    canonical_columns(entity): the columns of the entity's union after `source_system`, in order,
    defined here once: a new column is added here, and every staging model of the entity must have
    them all. `crm_source_system` is the exception, not read from staging: it names the CRM source
    system whose ids a billing record refers to (crm_source_system()).

    union_staging(entity, relations, rename={}, where=none): the union of the staging `relations`
    of `entity` that belong to the night's source system (night_source_system(entity): var
    crm_source for a CRM entity, billing_source for a billing one), one `select` per relation, as
    the body of a model's `unioned` CTE. Every source system's staging model is listed (lineage,
    and every model builds on every warehouse), but only the night's is read: a warehouse that
    switched from the file drop to an API source, or back, keeps the other's raw rows, which must not
    count twice.
      - source_system: from the staging model's name, `stg_<source_system>__<name>`;
      - the canonical columns, in their order, each renamed as `rename` says (a model that derives
        a column as of the cutoff keeps the source's value as e.g. source_status);
      - where: a condition on the rows of every relation (the filter of the incremental models,
        which read one staging model: macros/latest_versions.sql).
    A staging model that lacks canonical columns fails the model's compilation, naming them.
    Columns are not cast: the staging models type them, and the same column must have the same
    type in each.

    An incremental unioned model records the checksum of its own SQL file only (latest_versions.sql):
    after changing the columns of its entity here, run it with --full-refresh.
#}

{% macro canonical_columns(entity) -%}
    {%- set columns = {
        'activities': [
            'activity_id', 'deal_id', 'account_id', 'contact_id', 'owner_user_id', 'channel', 'occurred_at',
            'updated_at',
        ],
        'billing_customers': [
            'crm_source_system', 'customer_id', 'crm_account_id', 'customer_name', 'tax_id', 'email_domain',
            'currency', 'created_at', 'updated_at',
        ],
        'contacts': [
            'contact_id', 'account_id', 'full_name', 'email', 'phone', 'job_title', 'created_at', 'updated_at',
        ],
        'crm_accounts': [
            'account_id', 'owner_user_id', 'account_name', 'tax_id', 'domain', 'industry', 'country',
            'employee_count', 'created_at', 'updated_at',
        ],
        'deal_contacts': ['deal_id', 'contact_id', 'role', 'updated_at'],
        'deal_stage_history': ['deal_id', 'stage_id', 'entered_at'],
        'deals': [
            'deal_id', 'account_id', 'owner_user_id', 'pipeline_id', 'stage_id', 'deal_name', 'status', 'currency',
            'amount', 'lost_reason', 'lead_source', 'expected_close_date', 'created_at', 'closed_at', 'updated_at',
        ],
        'invoices': [
            'crm_source_system', 'invoice_id', 'customer_id', 'subscription_id', 'deal_id', 'status', 'currency',
            'amount_total', 'amount_paid', 'issued_at', 'due_at', 'paid_at', 'updated_at',
        ],
        'sales_reps': ['user_id', 'full_name', 'email', 'team', 'is_active', 'updated_at'],
        'stages': [
            'stage_id', 'pipeline_id', 'stage_name', 'display_order', 'probability', 'canonical_stage',
            'updated_at',
        ],
        'subscriptions': [
            'subscription_id', 'customer_id', 'plan', 'status', 'currency', 'mrr_amount', 'started_at',
            'canceled_at', 'updated_at',
        ],
    } -%}
    {%- if entity not in columns -%}
        {{ exceptions.raise_compiler_error(
            "no canonical columns for entity '" ~ entity ~ "' (macros/unioned.sql knows: "
            ~ (columns.keys() | sort | join(', ')) ~ ")"
        ) }}
    {%- endif -%}
    {{- return(columns[entity]) -}}
{%- endmacro %}

{# The CRM source system whose ids (crm_account_id, deal_id) the billing source system's records refer to. #}
{% macro crm_source_system(billing_source_system) -%}
    {#- the file drop's billing and Stripe's metadata (crm_account_id, deal_id) refer to the ids of the
        night's CRM (var crm_source: files, amocrm...) -#}
    {%- set crm_of_billing = {
        'files': var('crm_source', 'files'),
        'stripe': var('crm_source', 'files'),
    } -%}
    {%- if billing_source_system not in crm_of_billing -%}
        {{ exceptions.raise_compiler_error(
            "no CRM source system known for the billing source system '" ~ billing_source_system
            ~ "': add it to crm_source_system() in macros/unioned.sql"
        ) }}
    {%- endif -%}
    {{- return(crm_of_billing[billing_source_system]) -}}
{%- endmacro %}

{#
    The source system the night reads `entity` from: var crm_source for the CRM's entities, var
    billing_source for billing's (billing_customers, subscriptions, invoices).
#}
{% macro night_source_system(entity) -%}
    {%- if entity in ('billing_customers', 'subscriptions', 'invoices') -%}
        {{- return(var('billing_source', 'files')) -}}
    {%- endif -%}
    {{- return(var('crm_source', 'files')) -}}
{%- endmacro %}

{% macro union_staging(entity, relations, rename={}, where=none) -%}
    {#- while dbt parses, ref() does not resolve to the staging model: nothing to check or emit -#}
    {%- if not execute -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set columns = canonical_columns(entity) -%}
    {%- set night_source = night_source_system(entity) -%}
    {%- set read_relations = [] -%}
    {%- for relation in relations -%}
        {%- if relation.identifier.startswith('stg_' ~ night_source ~ '__') -%}
            {%- do read_relations.append(relation) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not read_relations -%}
        {{ exceptions.raise_compiler_error(
            "union_staging('" ~ entity ~ "'): the night reads it from '" ~ night_source
            ~ "', but no staging model of that source system is listed ("
            ~ (relations | map(attribute='identifier') | join(', ')) ~ ")"
        ) }}
    {%- endif -%}
    {%- set read = columns | reject('equalto', 'crm_source_system') | list -%}
    {%- for name in rename if name not in columns -%}
        {{ exceptions.raise_compiler_error(
            "union_staging('" ~ entity ~ "'): cannot rename '" ~ name ~ "', not a canonical column"
        ) }}
    {%- endfor -%}
    {%- for relation in read_relations -%}
        {%- set parsed = modules.re.match('^stg_([a-z0-9]+)__', relation.identifier) -%}
        {%- if not parsed -%}
            {{ exceptions.raise_compiler_error(
                "union_staging('" ~ entity ~ "'): " ~ relation.identifier
                ~ " is not named stg_<source_system>__<name>"
            ) }}
        {%- endif -%}
        {%- set source_system = parsed.group(1) -%}
        {#- a relation not built yet (dbt compile on an empty warehouse) has no columns to check -#}
        {%- set present = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
        {%- set missing = read | reject('in', present) | list -%}
        {%- if present and missing -%}
            {{ exceptions.raise_compiler_error(
                relation.identifier ~ " lacks canonical columns of '" ~ entity ~ "': " ~ (missing | join(', '))
                ~ " (macros/unioned.sql)"
            ) }}
        {%- endif -%}
        {%- if not loop.first %}

    union all

    {% endif -%}
    select
        '{{ source_system }}' as source_system,
        {%- for column in columns %}
        {% if column == 'crm_source_system' -%}
            '{{ crm_source_system(source_system) }}' as crm_source_system
        {%- else -%}
            {{ column }}{% if column in rename %} as {{ rename[column] }}{% endif %}
        {%- endif %}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ relation }}
    {%- if where is not none %}
    where
        {{ where | trim }}
    {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
