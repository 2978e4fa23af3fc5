"""The researcher's own API tokens: create (the key is shown once), see, revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.selectors import token_of, tokens_of
from accounts.services import token_create, token_revoke
from dashboard.forms import TokenForm


@login_required
@require_http_methods(["GET", "POST"])
def tokens_view(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST if request.method == "POST" else None)
    new_key = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            created = token_create(
                user=request.user,
                scope=form.cleaned_data["scope"],
                name=form.cleaned_data["name"],
                expires_days=form.cleaned_data["expires_days"],
            )
            # Rendered, not redirected: the key must not travel through the session store.
            new_key = created.key
            form = TokenForm()
        else:
            status = 400
    response = render(
        request,
        "dashboard/tokens.html",
        {"form": form, "tokens": tokens_of(user=request.user), "new_key": new_key},
        status=status,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = token_of(user=request.user, pk=pk)
    if token is None:
        raise Http404
    if token_revoke(token=token, actor=request.user):
        messages.success(request, _("Token %(prefix)s… revoked.") % {"prefix": token.prefix})
    return redirect("dashboard:tokens")
