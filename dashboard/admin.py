from django.contrib import admin

from dashboard.models import Withdrawal


@admin.register(Withdrawal)
class WithdrawalAdmin(admin.ModelAdmin[Withdrawal]):
    list_display = ("study", "participant_pk", "withdrawn_by_username", "withdrawn_at")
    readonly_fields = [f.name for f in Withdrawal._meta.fields]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
