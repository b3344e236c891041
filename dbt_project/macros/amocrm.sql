{#
    The custom fields of an amoCRM record (its `custom_fields_values`: an array, or null when the
    record has none) as a set of jsonb elements, for `... from {{ amocrm_custom_field_values('x.doc') }} as field`.
#}
{% macro amocrm_custom_field_values(doc) -%}
    jsonb_array_elements(
        case
            when jsonb_typeof({{ doc }} -> 'custom_fields_values') = 'array'
                then {{ doc }} -> 'custom_fields_values'
            else '[]'::jsonb
        end
    )
{%- endmacro %}

{#
    The first value of the custom field `field_id` among the elements `field` of
    amocrm_custom_field_values(): an aggregate, one per record.
#}
{% macro amocrm_field_value(field_id) -%}
    max(field.value -> 'values' -> 0 ->> 'value') filter (where (field.value ->> 'field_id')::bigint = {{ field_id }})
{%- endmacro %}
