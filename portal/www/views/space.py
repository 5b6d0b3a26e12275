from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext as _

from portal.members.nir import mask


@login_required
def home(request):
    account = request.user
    return render(
        request,
        "www/space.html",
        {
            "title": _("Mon espace"),
            "account": account,
            "member": account.member,
            "masked_nir": mask(account.nir),
        },
    )
